"""Helpers for the dataset tests: messages and a store built by hand, a cheap token counter."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from selftune.config import BuildConfig
from selftune.records import Message, Note
from selftune.store import Store

T0 = datetime(2024, 3, 14, 9, 0, tzinfo=UTC)


def words(text: str) -> int:
    """A stand-in token counter: one token per word (fast, deterministic)."""
    return len(text.split())


def msg(
    author: str,
    text: str,
    minutes: float,
    conversation: str = "whatsapp:c1",
    title: str = "Tobias",
    kind: str = "text",
    source: str = "whatsapp",
    conversation_kind: str = "direct",
    **extra,
) -> Message:
    return Message(
        source=source,
        conversation_id=conversation,
        conversation_title=title,
        timestamp=T0 + timedelta(minutes=minutes),
        author=author,
        text=text,
        kind=kind,  # type: ignore[arg-type]
        is_me=author == "Mags",
        conversation_kind=conversation_kind,
        extra=extra,
    )


def make_store(path: Path, messages: list[Message], notes: list[Note] = ()) -> Store:
    store = Store(path)
    store.add_messages(messages)
    store.add_notes(list(notes))
    return store


@pytest.fixture
def config() -> BuildConfig:
    return BuildConfig(probe_per_source=2)


def chat(minutes_between: float, n_sessions: int, conversation: str = "whatsapp:c1", **kw):
    """n sessions of a two-person chat, each: Tobias asks, Mags answers twice, Tobias replies."""
    out = []
    for s in range(n_sessions):
        base = s * minutes_between
        out += [
            msg("Tobias", f"session {s} question about {conversation}?", base, conversation, **kw),
            msg(
                "Mags",
                f"answer {s} in {conversation}, the bees are grand",
                base + 1,
                conversation,
                **kw,
            ),
            msg("Mags", f"and a second line {s}", base + 2, conversation, **kw),
            msg("Tobias", f"thanks {s}", base + 3, conversation, **kw),
        ]
    return out
