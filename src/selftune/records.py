"""The canonical records every parser yields: `Message` and `Note`, validated in one place.

Ids are stable and derived from content, never from file position, so re-importing an export (or a
newer export of the same chat) adds only what is new.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import datetime
from hashlib import blake2b as _blake2b
from typing import Any, Literal

MessageKind = Literal["text", "media", "deleted", "system"]
MESSAGE_KINDS: tuple[str, ...] = ("text", "media", "deleted", "system")
CONVERSATION_KINDS: tuple[str, ...] = ("direct", "group", "channel", "email", "unknown")


def stable_id(*parts: object) -> str:
    """A short, stable id from the given parts (None and "" are distinct from each other)."""
    # one update of the joined parts: the same digest as one update per part, in less time
    joined = "".join([f"{part!r}\x1f" for part in parts]).encode("utf-8", "surrogatepass")
    return hashlib.blake2b(joined, digest_size=10).hexdigest()


def conversation_key(source: str, *parts: object) -> str:
    """A stable conversation id: the same chat exported twice gets the same id."""
    return f"{source}:{stable_id(source, *parts)[:12]}"


@dataclass(slots=True)
class Message:
    """One message from a chat, email thread or post, as every parser yields it."""

    source: str  # parser name, e.g. "whatsapp"
    conversation_id: str
    conversation_title: str
    timestamp: datetime  # timezone-aware (naive export times are taken as local time)
    author: str  # display name as the export shows it ("" for system messages)
    text: str
    kind: MessageKind = "text"
    is_me: bool | None = None  # None: the parser could not tell; identity rules decide later
    author_id: str | None = None  # handle, phone number, address, platform id
    conversation_kind: str = "unknown"
    reply_to: str | None = None  # id of the message this one answers, when the export says
    origin: str = ""  # where it came from: "file:line" or "file#json.path"
    extra: dict[str, Any] = field(default_factory=dict)  # attachments, reactions, forwarded_from…
    seq: int = 0  # disambiguates identical messages in one conversation at one instant
    id: str = ""
    # the ISO text of `timestamp` the id was computed from, and the datetime it is of: the store
    # writes the same text, and an import is spared a second isoformat per message
    _iso: str = field(default="", init=False, repr=False, compare=False)
    _iso_of: datetime | None = field(default=None, init=False, repr=False, compare=False)

    def iso_timestamp(self) -> str:
        """`timestamp.isoformat()`, as the store keeps it."""
        return self._iso if self._iso_of is self.timestamp else self.timestamp.isoformat()

    def __post_init__(self) -> None:
        if not self.id:
            # stable_id(conversation_id, wall-clock time, author, kind, text, seq), written out:
            # this runs once per message of every import. Wall-clock time: the same export read
            # in another timezone keeps its ids.
            wall = self._iso = self.timestamp.isoformat()
            self._iso_of = self.timestamp
            # "…T09:12:44+01:00": the wall-clock part is the text before the offset
            wall = wall[:19] if len(wall) == 25 else self.timestamp.replace(tzinfo=None).isoformat()
            joined = (
                f"{self.conversation_id!r}\x1f{wall!r}\x1f{self.author!r}\x1f{self.kind!r}\x1f"
                f"{self.text!r}\x1f{self.seq!r}\x1f"
            )
            self.id = _blake2b(joined.encode("utf-8", "surrogatepass"), digest_size=10).hexdigest()


@dataclass(slots=True)
class Block:
    """One block of a note (a paragraph, heading, list item or Roam block) and its children."""

    text: str
    children: list[Block] = field(default_factory=list)
    uid: str | None = None
    heading: int = 0  # 1–6 for headings, 0 otherwise

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"text": self.text}
        if self.uid:
            out["uid"] = self.uid
        if self.heading:
            out["heading"] = self.heading
        if self.children:
            out["children"] = [child.to_dict() for child in self.children]
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Block:
        return cls(
            text=data.get("text", ""),
            children=[cls.from_dict(c) for c in data.get("children", [])],
            uid=data.get("uid"),
            heading=data.get("heading", 0),
        )


@dataclass(slots=True)
class Note:
    """One note or page, with its structure kept as a block tree."""

    source: str  # parser name, e.g. "markdown", "roam"
    title: str
    path: str  # where it lives in the export (relative path or page name)
    text: str  # the note as the owner wrote it
    blocks: list[Block] = field(default_factory=list)
    created: datetime | None = None
    modified: datetime | None = None
    tags: list[str] = field(default_factory=list)
    links: list[str] = field(default_factory=list)
    metadata: dict[str, Any] = field(default_factory=dict)  # front matter and the like
    origin: str = ""
    id: str = ""

    def __post_init__(self) -> None:
        if not self.id:
            self.id = stable_id(self.source, self.path, self.title)


Record = Message | Note


def validate_message(message: Message) -> list[str]:
    """Every rule a message breaks, as readable sentences (empty when it is valid)."""
    problems = []
    if message.kind not in MESSAGE_KINDS:
        problems.append(f"kind is {message.kind!r}, but must be one of {', '.join(MESSAGE_KINDS)}")
    if message.timestamp.tzinfo is None:
        problems.append("timestamp has no timezone")
    if not message.conversation_id:
        problems.append("conversation_id is empty")
    if message.kind == "text" and (not message.text or message.text.isspace()):  # no copy
        problems.append("a text message has no text")
    if message.kind != "system" and not message.author:
        problems.append("a non-system message has no author")
    return problems


def validate_note(note: Note) -> list[str]:
    """Every rule a note breaks (empty when it is valid)."""
    problems = []
    if not note.title and not note.path:
        problems.append("note has neither title nor path")
    return problems
