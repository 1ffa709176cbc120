"""Split a conversation into sessions at silences, and a session into turns.

A turn is one author's consecutive messages, merged with their line breaks kept. Media appear as a
short placeholder; deleted and system messages never become turns.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from selftune.records import Message

MEDIA_PLACEHOLDER = "[media]"


@dataclass
class Turn:
    author: str
    is_me: bool
    text: str
    start: datetime
    end: datetime


def split_sessions(messages: Iterable[Message], gap: timedelta) -> list[list[Message]]:
    """Consecutive runs of one conversation's messages with no silence longer than `gap`.

    Messages must come in time order. A new calendar day after a long gap always splits, because
    the comparison is between full timestamps, not times of day.
    """
    sessions: list[list[Message]] = []
    current: list[Message] = []
    for message in messages:
        if current and message.timestamp - current[-1].timestamp > gap:
            sessions.append(current)
            current = []
        current.append(message)
    if current:
        sessions.append(current)
    return sessions


def merge_turns(session: Iterable[Message]) -> list[Turn]:
    """One turn per run of messages by the same author.

    System and deleted messages are dropped; media become a placeholder in other people's turns
    and are dropped from the owner's, so the model never learns to write a placeholder.
    """
    turns: list[Turn] = []
    for message in session:
        if message.kind in ("system", "deleted") or (message.is_me and message.kind != "text"):
            continue
        text = message.text if message.kind == "text" else MEDIA_PLACEHOLDER
        is_me = bool(message.is_me)
        if turns and turns[-1].author == message.author and turns[-1].is_me == is_me:
            turns[-1].text += "\n" + text
            turns[-1].end = message.timestamp
        else:
            turns.append(Turn(message.author, is_me, text, message.timestamp, message.timestamp))
    return turns
