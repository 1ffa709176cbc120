"""Memory and facts: the twin remembers each conversation and states its owner's facts right.

- `facts.py`: facts.yaml (public and private facts); `suggest.py`: candidates mined from the
  owner's own writing, accepted or rejected by the owner;
- `index.py`: the FTS5 search index in store.sqlite, updated by `ingest`;
- `block.py`: `memory_block`, the one function that builds the memory block of a reply;
- `scope.py`: the scope rule (who may be reminded of what), the same at training and at use;
- `forget.py`: `forget_contact`, a contact taken out of memory and of future datasets.

`Memory` is the entry point at use time (CLI, server); `BuildMemory` is the build's hook, which
gives each training example the block of its own past.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from selftune import twin as twin_prompt
from selftune.config import MemoryConfig
from selftune.memory.block import Block, Moment, memory_block
from selftune.memory.facts import Facts, load_facts, private_facts
from selftune.memory.index import following, update_index
from selftune.memory.scope import Audience, Scope, scope_for
from selftune.store import Store
from selftune.store.memory_index import contacts_in, conversation_by_title
from selftune.twin import Twin
from selftune.workspace import Workspace


def on_ingest(store: Store) -> int:
    """Bring the index up to date with the store (what `ingest` calls after importing)."""
    return update_index(store)


# what `ingest` holds open while it loads: the index follows each committed batch on a thread
following_ingest = following


def token_counter(tokenizer: Any) -> Callable[[str], int]:
    """Tokens of a text for the memory budget, with the model's own tokenizer."""
    return lambda text: len(tokenizer.encode(text, add_special_tokens=False))


@dataclass
class Memory:
    """The twin's memory at use time: the store, the facts and the settings of one workspace.
    Each call opens the store for itself, so one Memory serves every server thread."""

    store_path: Path
    facts: Facts
    settings: MemoryConfig
    twin: Twin
    secrets: tuple[str, ...] = ()
    scrub_pii: bool = True  # build.scrub_pii: the block is scrubbed as the dataset was

    @classmethod
    def from_workspace(cls, ws: Workspace) -> Memory:
        return cls(
            ws.store_path,
            load_facts(ws.root),
            ws.config.memory,
            Twin.from_config(ws.config),
            tuple(private_facts(ws)),
            ws.config.build.scrub_pii,
        )

    @property
    def enabled(self) -> bool:
        return self.settings.enabled

    def block(self, moment: Moment, count_tokens: Callable[[str], int] | None = None) -> Block:
        if not self.enabled:
            return Block()
        with Store(self.store_path) as store:
            update_index(store)
            return self._block(store, moment, count_tokens)

    def _block(
        self, store: Store, moment: Moment, count_tokens: Callable[[str], int] | None
    ) -> Block:
        owner = self.twin.owner
        return memory_block(
            store, self.facts, self.settings, moment, owner, count_tokens, self.secrets,
            scrub_pii=self.scrub_pii,
        )  # fmt: skip

    def for_turns(
        self,
        turns: Sequence[tuple[str, str]],
        platform: str | None = None,
        conversation: str | None = None,
        when: datetime | None = None,
        count_tokens: Callable[[str], int] | None = None,
        audience: Audience | None = None,
    ) -> str | None:
        """The block for drafting the owner's reply to pasted (author, text) turns: the
        conversation is found in the store by its name, the contacts are the turns' authors.
        Who sees the reply (`audience`, by default): the turns' other authors and everyone who
        wrote in the stored conversation."""
        if not self.enabled or not turns:
            return None
        others = [a for a, _ in turns if not self.twin.is_owner(a)]
        answered = _last_run(turns, self.twin)
        with Store(self.store_path) as store:
            update_index(store)
            source = (platform or "").lower() or None
            cid = conversation_by_title(store, conversation, source) if conversation else None
            moment = Moment(
                answered,
                when or twin_prompt.now(),
                cid,
                tuple(dict.fromkeys(others)),
                frozenset(t.strip() for _, t in turns),
                audience,
            )
            return self._block(store, moment, count_tokens).text or None

    def for_messages(
        self,
        messages: Sequence[dict[str, Any]],
        contact: str | None = None,
        when: datetime | None = None,
        count_tokens: Callable[[str], int] | None = None,
        owner: bool = False,
    ) -> str | None:
        """The block for the twin's next chat message after `messages` (OpenAI shape). Who
        sees it: `contact` (the API's `user`, `chat --as`) when given, else the owner when
        `owner` (the CLI, the owner's key), else nobody known: public facts only."""
        if not self.enabled:
            return None
        users = [m.get("content") or "" for m in messages if m.get("role") == "user"]
        if not users:
            return None
        moment = Moment(
            users[-1],
            when or twin_prompt.now(),
            None,
            (contact,) if contact else (),
            frozenset((m.get("content") or "").strip() for m in messages),
            Audience((contact,)) if contact else Audience((), owner),
        )
        return self.block(moment, count_tokens).text or None


def _last_run(turns: Sequence[tuple[str, str]], twin: Twin) -> str:
    """The messages being answered: the others' turns after the owner's last one."""
    tail: list[str] = []
    for author, text in reversed(turns):
        if twin.is_owner(author):
            if tail:
                break
            continue
        tail.insert(0, text)
    return "\n".join(tail) or turns[-1][1]


class BuildMemory:
    """The build's hook: the memory block of one training window, from only what came before
    the window's first turn, and the public facts the owner's own turns in the window state or
    rely on (so the twin learns to take a fact from its block). Called with the session, the
    window's turns and the build's pseudonyms (`label`, when `build.speaker_names: pseudonyms`);
    returns the block's text, scrubbed as the turns are (names included)."""

    def __init__(self, store: Store, facts: Facts, settings: MemoryConfig, owner: str,
                 secrets: Sequence[str], count_tokens: Callable[[str], int] | None = None,
                 scrub_pii: bool = True):  # fmt: skip
        self.store, self.facts, self.settings, self.owner = store, facts, settings, owner
        self.secrets, self.count_tokens = tuple(secrets), count_tokens
        self.scrub_pii = scrub_pii
        self.reserve = settings.max_tokens if settings.enabled else 0
        self._contacts: dict[str, tuple[str, ...]] = {}
        self._scopes: dict[str, Scope] = {}
        update_index(store)

    def contacts(self, conversation_id: str) -> tuple[str, ...]:
        if conversation_id not in self._contacts:
            self._contacts[conversation_id] = contacts_in(self.store, conversation_id)
        return self._contacts[conversation_id]

    def __call__(
        self, session: Any, window: Sequence[Any], label: Callable[[str], str] | None = None
    ) -> str:
        first_mine = next((i for i, t in enumerate(window) if t.is_me), 0)
        asked = [t.text for t in window[:first_mine]] or [window[0].text]
        conversation = session.conversation
        # who sees the example's reply: everyone else who wrote in its conversation
        audience = Audience(self.contacts(conversation))
        if conversation not in self._scopes:
            self._scopes[conversation] = scope_for(self.store, audience, self.settings.scope)
        moment = Moment(
            "\n".join(asked),
            window[0].start,
            conversation,
            audience.people,
            frozenset(t.text.strip() for t in window),
            audience,
            said="\n".join(t.text for t in window if t.is_me),
        )
        block = memory_block(
            self.store, self.facts, self.settings, moment, self.owner, self.count_tokens,
            self.secrets, label, self.scrub_pii, self._scopes[conversation],
        )  # fmt: skip
        return block.text


def build_memory(ws: Workspace, store: Store, count_tokens: Callable[[str], int] | None = None):  # type: ignore[no-untyped-def]
    """The build's memory hook for `ws`, or None when memory is off."""
    if not ws.config.memory.enabled:
        return None
    return BuildMemory(
        store,
        load_facts(ws.root),
        ws.config.memory,
        Twin.from_config(ws.config).owner,
        private_facts(ws),
        count_tokens,
        ws.config.build.scrub_pii,
    )


__all__ = [
    "Audience",
    "BuildMemory",
    "Memory",
    "Moment",
    "build_memory",
    "memory_block",
    "following_ingest",
    "on_ingest",
]
