"""THE memory block of one reply, built by `memory_block` both when the dataset is built (each
example sees only what came before it) and when the twin is used (`reply`, `chat`, `/v1/reply`,
`/v1/chat/completions`, the web page), so the twin is prompted at use as it was trained.

The block holds, within a token budget and in this order of priority: the public facts that the
new message touches, the last messages of this conversation, and the owner's past exchanges most
relevant to the new message (the same conversation and the same contact count more), only from
conversations that everyone who will see the reply took part in (`scope.py`). Everything
in it is strictly older than the moment it is built for; a message holding a private fact (as
`pii.FactMatcher` matches it: any case, whitespace or zero-width form, or one of its values on
its own) is never in it, and private facts never are. Every name and text in it is scrubbed
as the dataset's turns are (`pii.Scrubber`: an author who is a bare phone number becomes
`<PHONE_1>`), with placeholders numbered within the block, so the block of an example is the
same string at training and at use.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime

from selftune.config import MemoryConfig
from selftune.memory.facts import Fact, Facts, second_person
from selftune.memory.index import (
    Hit,
    around,
    epoch,
    excluded_conversations,
    recent,
    search,
    terms,
)
from selftune.memory.scope import Audience, Scope, scope_for
from selftune.pii import Scrubber
from selftune.store import Store
from selftune.store.memory_index import contact_conversations, contacts_in

MAX_MESSAGE_CHARS = 240
FACTS_HEADER = "About you:"
RECENT_HEADER = "Earlier in this chat:"
PAST_HEADER = "From your past chats:"


def estimate_tokens(text: str) -> int:
    """About four characters a token: the count when no tokenizer is at hand."""
    return (len(text) + 3) // 4


@dataclass
class Moment:
    """What a reply is for: the message(s) it answers, when, where and with whom."""

    text: str
    before: datetime  # only what came strictly before this is remembered
    conversation_id: str | None = None
    contacts: tuple[str, ...] = ()
    in_prompt: frozenset[str] = frozenset()  # texts the prompt already holds (not repeated)
    # who will see the reply; None: everyone who wrote in `conversation_id`, and `contacts`
    audience: Audience | None = None
    said: str = ""  # at build: the owner's own words in the example (facts they state or rely on)

    def who_sees(self, store: Store) -> Audience:
        if self.audience is not None:
            return self.audience
        members = contacts_in(store, self.conversation_id) if self.conversation_id else ()
        return Audience(tuple(dict.fromkeys([*members, *self.contacts])))


@dataclass
class Block:
    """A memory block: its text for the system prompt and what went into it."""

    facts: list[Fact] = field(default_factory=list)
    recent: list[Hit] = field(default_factory=list)
    exchanges: list[list[Hit]] = field(default_factory=list)
    text: str = ""
    tokens: int = 0
    scope: Scope | None = None  # what the block was allowed to hold

    def messages(self) -> list[Hit]:
        return [*self.recent, *(h for e in self.exchanges for h in e)]


def _short(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= MAX_MESSAGE_CHARS else text[: MAX_MESSAGE_CHARS - 1] + "…"


def facts_for(facts: Facts, moment: Moment, limit: int) -> list[Fact]:
    """The public facts of a reply's block: those the owner's own words in it state or rely on
    (at build, `moment.said`: so the twin learns to copy the fact from its block), then those
    the message answered touches. Private facts are never among them (`Facts.public`)."""
    stated = facts.stated_in(moment.said) if moment.said else []
    asked = [f for f in facts.matching(moment.text, limit) if f not in stated]
    return [*stated, *asked][:limit]


def fact_line(fact: Fact) -> str:
    """A fact as a line a small model can copy from: addressed to the twin (\"You live in
    Lyon.\"), as the system prompt addresses it, with the owner's own words kept."""
    return f"- {second_person(fact.fact.strip())}"


def memory_block(
    store: Store,
    facts: Facts,
    settings: MemoryConfig,
    moment: Moment,
    owner: str,
    count_tokens: Callable[[str], int] | None = None,
    secrets: Iterable[str] = (),
    label: Callable[[str], str] | None = None,
    scrub_pii: bool = True,
    scope: Scope | None = None,
) -> Block:
    """The memory block for a reply at `moment` (an empty Block when memory is off or nothing
    is remembered). `secrets` are strings no part of the block may hold (private facts);
    `label` renames speakers (the build's pseudonyms); `scrub_pii` (build.scrub_pii) replaces
    PII in names and texts by placeholders, as the build does in the turns; `scope` (made
    from the moment's audience and `memory.scope` when not given) says which conversations
    and facts the block may hold."""
    block = Block()
    if not settings.enabled:
        return block
    if scope is None:
        scope = scope_for(store, moment.who_sees(store), settings.scope)
    block.scope = scope
    count = count_tokens or estimate_tokens
    scrubber = Scrubber([*secrets, *facts.secrets()], pii=scrub_pii)
    hidden = scrubber.matcher
    before = epoch(moment.before)
    budget = settings.max_tokens

    def name(hit: Hit) -> str:
        who = owner if hit.is_me else (hit.author or "someone")
        return scrubber.scrub(label(who) if label is not None and not hit.is_me else who)

    def line(hit: Hit) -> str:
        return f"{name(hit)}: {_short(scrubber.scrub(hit.text))}"

    def fits(text: str) -> bool:
        nonlocal budget
        cost = count(text) + 1
        if cost > budget:
            return False
        budget -= cost
        return True

    def usable(hit: Hit, skip: set[str]) -> bool:
        return (
            hit.ts < before
            and hit.conversation_id not in skip
            and scope.allows(hit.conversation_id)
            and hit.text.strip() not in moment.in_prompt
            and not hidden.search(hit.text)
            and not hidden.search(hit.author)
        )

    parts: dict[str, list[str]] = {FACTS_HEADER: [], RECENT_HEADER: [], PAST_HEADER: []}
    for fact in facts_for(facts, moment, settings.facts):
        text = scrubber.scrub(fact_line(fact))
        if not hidden.search(fact.fact) and scope.allows_fact(fact.who) and fits(text):
            block.facts.append(fact)
            parts[FACTS_HEADER].append(text)

    skip = excluded_conversations(store)
    seen: set[int] = set()
    cid = moment.conversation_id
    if cid and cid not in skip and scope.allows(cid):
        candidates = recent(store, cid, before, settings.recent_turns)
        lines = []
        for hit in reversed(candidates):  # the latest first, so a tight budget keeps them
            if usable(hit, skip) and fits(line(hit)):
                block.recent.insert(0, hit)
                lines.insert(0, line(hit))
                seen.add(hit.rowid)
        parts[RECENT_HEADER] = lines

    words = terms(moment.text)
    if settings.exchanges and words:
        near = {moment.conversation_id} if moment.conversation_id else set()
        near |= contact_conversations(store, moment.contacts)
        hits = [h for h in search(store, words, before, limit=40) if usable(h, skip)]
        boost = settings.same_contact_boost
        hits.sort(key=lambda h: h.score * (boost if h.conversation_id in near else 1.0))
        for hit in hits:
            if len(block.exchanges) >= settings.exchanges:
                break
            if hit.rowid in seen:
                continue
            exchange = [h for h in around(store, hit, before) if h.rowid not in seen]
            exchange = [h for h in exchange if usable(h, skip)]
            if not any(h.is_me for h in exchange):  # the owner's exchanges, not others' chatter
                continue
            when = datetime.fromtimestamp(hit.ts, moment.before.tzinfo)
            text = f"({when:%b %Y}) " + " / ".join(line(h) for h in exchange)
            if fits(text):
                block.exchanges.append(exchange)
                parts[PAST_HEADER].append(text)
                seen |= {h.rowid for h in exchange}

    order = (
        (PAST_HEADER, RECENT_HEADER, FACTS_HEADER)
        if settings.facts_place == "last"
        else (FACTS_HEADER, PAST_HEADER, RECENT_HEADER)
    )
    block.text = "\n".join(
        f"{header}\n" + "\n".join(parts[header]) for header in order if parts[header]
    )
    block.tokens = settings.max_tokens - budget
    return block
