"""The scope rule (contextual integrity), in one place for training and for use: a remembered
message may go into a reply's memory block only if everyone who will see that reply took part
in the conversation it comes from.

- Answering a direct chat with X: conversations X wrote in (their chat, groups with X).
- Answering a group: conversations every member of the group wrote in.
- A chat nobody else wrote in (notes to self): only when the owner is the one asking.
- The owner talking to their own twin (`Audience.the_owner()`): everything.
- Nobody known (an API call without `user` and without the owner's key): no messages at all,
  public facts only.

A public fact in facts.yaml is for anyone unless it names its audience (`who: [Tomás]`): then
everyone who sees the reply must be one of them. `memory.scope: everyone` switches the rule for
messages off (the twin may then carry one person's conversation to another).

"Took part" means wrote at least one message there, under any spelling the owner merged in
`selftune people` (a member who never wrote is not known to have seen anything, so a group's
silent members make its block narrower, never wider).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from selftune.store import Store
from selftune.store.memory_index import alias_links, contact_conversations, conversation_authors

SCOPES = ("participants", "everyone")


@dataclass(frozen=True)
class Audience:
    """Who will see a reply: the owner alone, or these people (the owner may be there too)."""

    people: tuple[str, ...] = ()
    owner: bool = False

    @classmethod
    def the_owner(cls) -> Audience:
        return cls((), True)

    @property
    def known(self) -> bool:
        return self.owner or bool(self.people)


def _key(name: str) -> str:
    return " ".join(name.split()).casefold()


def spellings(store: Store, name: str) -> set[str]:
    """Every spelling in the store of the person `name` names: the name in any letter case
    (`Store.match_person`) and every name merged with it under one main name."""
    links = alias_links(store)
    main = {_key(a): _key(b) for a, b in links}

    def root(n: str) -> str:
        seen = {n}
        while n in main and main[n] not in seen:
            n = main[n]
            seen.add(n)
        return n

    mine = root(_key(name))
    merged = {name} | {n for link in links for n in link if root(_key(n)) == mine}
    found = set(merged)
    for n in merged:
        found |= set(store.match_person(n))
    return found


@dataclass
class Scope:
    """What a block for one audience may hold: which conversations (None: any) and facts."""

    audience: Audience
    conversations: frozenset[str] | None
    names: tuple[frozenset[str], ...] = ()  # each audience member's spellings, case folded

    def allows(self, conversation_id: str) -> bool:
        return self.conversations is None or conversation_id in self.conversations

    def allows_fact(self, who: Iterable[str]) -> bool:
        """A fact with an audience (`who`) only when everyone who sees the reply is in it."""
        listed = {_key(w) for w in who if w.strip()}
        if not listed or (self.audience.owner and not self.audience.people):
            return True
        if not self.audience.people:
            return False
        return all(spelled & listed for spelled in self.names)


def scope_for(store: Store, audience: Audience, rule: str = "participants") -> Scope:
    """The scope of a block seen by `audience` under `memory.scope` = `rule`."""
    spelled = [spellings(store, p) for p in dict.fromkeys(audience.people)]
    names = tuple(frozenset(_key(n) for n in s) for s in spelled)
    if rule == "everyone" or (audience.owner and not audience.people):
        return Scope(audience, None, names)
    allowed: set[str] | None = None
    for person in spelled:
        theirs = contact_conversations(store, person)
        allowed = theirs if allowed is None else allowed & theirs
    return Scope(audience, frozenset(allowed or ()), names)


def outside_scope(store: Store, conversation_ids: Iterable[str], audience: Audience) -> list[str]:
    """The conversations among these that someone in `audience` did not write in: what no
    block for them may quote (checked from who wrote where, not from `scope_for`)."""
    if audience.owner and not audience.people:
        return []
    wrote = conversation_authors(store, conversation_ids)
    people = [{_key(n) for n in spellings(store, p)} for p in audience.people]
    bad = []
    for cid, authors in wrote.items():
        present = {_key(a) for a in authors}
        if not people or not all(person & present for person in people):
            bad.append(cid)
    return sorted(bad)
