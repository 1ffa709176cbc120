"""Chats → training examples: split a conversation into sessions at silences, a session into
turns, and turns into windows whose targets are the owner's turns.

A turn is one author's consecutive messages, merged with their line breaks kept. Media appear as a
short placeholder in other people's turns; deleted and system messages never become turns, and
the owner's own media, bot and forwarded messages are never targets. In group chats others'
turns carry the speaker's name (or a stable pseudonym).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from selftune.records import Message

MEDIA_PLACEHOLDER = "[media]"
DAY = timedelta(days=1)


@dataclass
class Turn:
    author: str
    is_me: bool
    text: str
    start: datetime
    end: datetime
    tokens: int = 0


@dataclass
class Session:
    """One session of one conversation, with what the system prompt needs."""

    source: str
    conversation: str
    title: str
    kind: str  # conversation kind: direct, group, channel, email, unknown
    group: bool
    index: int
    turns: list[Turn] = field(default_factory=list)
    system: str = ""
    system_tokens: int = 0

    @property
    def start(self) -> datetime:
        return self.turns[0].start


def split_sessions(messages: Iterable[Message], gap: timedelta) -> list[list[Message]]:
    """Consecutive runs of one conversation's messages with no silence longer than `gap`.

    Messages must come in time order. A silence of a day or more always splits, whatever `gap`
    is, and the comparison is between full timestamps, so the same hour two days later splits.
    """
    gap = min(gap, DAY)
    sessions: list[list[Message]] = []
    current: list[Message] = []
    for message in messages:
        if current and message.timestamp - current[-1].timestamp >= gap:
            sessions.append(current)
            current = []
        current.append(message)
    if current:
        sessions.append(current)
    return sessions


def skip_reason(
    message: Message, drop_bots: bool = True, drop_forwarded: bool = True
) -> str | None:
    """Why a message is left out of the dataset entirely, or None to keep it."""
    if message.kind == "system":
        return "system message"
    if message.kind == "deleted":
        return "deleted message"
    extra = message.extra or {}
    if drop_bots and (
        extra.get("bot") or extra.get("via_bot") or extra.get("subtype") == "bot_message"
    ):
        return "bot or automated message"
    if drop_forwarded and message.is_me and (extra.get("forwarded_from") or extra.get("retweet")):
        return "forwarded, not written by you"
    if message.is_me and message.kind != "text":
        return "your media message (not text to learn)"
    return None


def merge_turns(
    session: Iterable[Message],
    skip: Callable[[Message], str | None] = skip_reason,
    filtered: Counter[str] | None = None,
) -> list[Turn]:
    """One turn per run of messages by the same author, line breaks kept.

    Messages `skip` gives a reason for are left out (and counted in `filtered`); media of others
    become a placeholder in context, so the model never learns to write one.
    """
    turns: list[Turn] = []
    for message in session:
        reason = skip(message)
        if reason:
            if filtered is not None:
                filtered[reason] += 1
            continue
        text = message.text.strip("\n") if message.kind == "text" else MEDIA_PLACEHOLDER
        is_me = bool(message.is_me)
        if turns and turns[-1].author == message.author and turns[-1].is_me == is_me:
            turns[-1].text += "\n" + text
            turns[-1].end = message.timestamp
        else:
            turns.append(Turn(message.author, is_me, text, message.timestamp, message.timestamp))
    return turns


def as_messages(turns: list[Turn], group: bool) -> list[dict[str, str]]:
    """Chat messages with strict user/assistant alternation: others' consecutive turns (one
    person's or several people's) merge into one user message, with speaker names in groups."""
    out: list[dict[str, str]] = []
    for turn in turns:
        role = "assistant" if turn.is_me else "user"
        text = f"{turn.author}: {turn.text}" if group and not turn.is_me else turn.text
        if out and out[-1]["role"] == role:
            out[-1]["content"] += "\n" + text
        else:
            out.append({"role": role, "content": text})
    return out


def windows(turns: list[Turn], max_turns: int, max_tokens: int) -> list[tuple[int, int]]:
    """Cut a session's turns into (start, end) windows within the turn and token limits.

    Each window ends on an owner turn, so every example has a target and no target is trained
    twice; the other people's turns after it open the next window as its context.
    """
    out = []
    start = 0
    while start < len(turns):
        end, tokens = start, 0
        while end < len(turns) and end - start < max_turns:
            cost = turns[end].tokens + 4
            if tokens + cost > max_tokens and end > start:
                break
            tokens += cost
            end += 1
        last_mine = max((i for i in range(start, end) if turns[i].is_me), default=None)
        if last_mine is None:
            start = end  # no owner turn fits: this stretch is context nobody answers
            continue
        out.append((start, last_mine + 1))
        start = last_mine + 1
    return out


class Pseudonyms:
    """Stable 'Person N' names, numbered by first appearance in the dataset."""

    def __init__(self) -> None:
        self.names: dict[str, str] = {}

    def __call__(self, name: str) -> str:
        if name not in self.names:
            self.names[name] = f"Person {len(self.names) + 1}"
        return self.names[name]
