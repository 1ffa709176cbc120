"""iMessage and SMS from macOS's `~/Library/Messages/chat.db` (copy it first; it is opened read-only).

Since macOS Ventura many bodies are stored only in `attributedBody`, an NSAttributedString in
Apple's typedstream format; the string is read from it when `text` is empty. `is_from_me` says
which messages are the owner's. Tapbacks (reactions) and group events are kept as system
messages; attachments without text are media. Dates are Apple time (seconds or nanoseconds since
2001-01-01 UTC).
"""

from __future__ import annotations

import sqlite3
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

from selftune.ingest.common import next_seq
from selftune.ingest.registry import ParseContext, register_parser
from selftune.records import Message, conversation_key
from selftune.store import read_foreign

APPLE_EPOCH = datetime(2001, 1, 1, tzinfo=UTC)
TAPBACKS = {
    2000: "loved",
    2001: "liked",
    2002: "disliked",
    2003: "laughed at",
    2004: "emphasized",
    2005: "questioned",
}
OBJECT_REPLACEMENT = "\ufffc"
QUERY = """
SELECT m.ROWID AS rowid, m.guid, m.text, m.attributedBody, m.date, m.is_from_me,
       m.cache_has_attachments, m.associated_message_type, m.item_type,
       m.thread_originator_guid, h.id AS handle, m.account,
       c.guid AS chat_guid, c.chat_identifier, c.display_name, c.style
FROM message m
LEFT JOIN handle h ON h.ROWID = m.handle_id
LEFT JOIN chat_message_join cmj ON cmj.message_id = m.ROWID
LEFT JOIN chat c ON c.ROWID = cmj.chat_id
ORDER BY m.date, m.ROWID
"""


def attributed_body_text(blob: bytes | None) -> str | None:
    """The plain string inside an `attributedBody` typedstream, or None if there is none."""
    if not blob:
        return None
    start = blob.find(b"NSString")
    if start < 0:
        return None
    i = start + len(b"NSString")
    plus = blob.find(b"+", i, i + 12)  # class info bytes, then '+' (a C string follows)
    if plus < 0:
        return None
    i = plus + 1
    if i >= len(blob):
        return None
    length = blob[i]
    i += 1
    if length == 0x81:
        length, i = int.from_bytes(blob[i : i + 2], "little"), i + 2
    elif length == 0x82:
        length, i = int.from_bytes(blob[i : i + 4], "little"), i + 4
    data = blob[i : i + length]
    if len(data) < length:
        return None
    return data.decode("utf-8", errors="replace")


def apple_time(value: int | float | None) -> datetime | None:
    if not value:
        return None
    seconds = value / 1e9 if value > 1e11 else value  # nanoseconds since High Sierra
    return APPLE_EPOCH + timedelta(seconds=seconds)


class IMessageParser:
    name = "imessage"
    description = "iMessage/SMS database from macOS (a copy of ~/Library/Messages/chat.db)"

    def detect(self, path: Path) -> bool:
        if not path.is_file() or path.suffix.lower() not in (".db", ".sqlite", ""):
            return False
        with path.open("rb") as fh:
            if fh.read(16) != b"SQLite format 3\x00":
                return False
        try:
            found = read_foreign(path, "SELECT name FROM sqlite_master WHERE type='table'")
            tables = {r[0] for r in found}
        except sqlite3.Error:
            return False
        return {"message", "handle", "chat", "chat_message_join"} <= tables

    def parse(self, path: Path, ctx: ParseContext) -> Iterator[Message]:
        try:
            rows = read_foreign(path, QUERY)
        except sqlite3.Error as exc:
            raise ValueError(f"not a readable Messages database ({exc})") from exc
        ids: dict[str, str] = {}
        seen: Counter = Counter()
        for row in rows:
            origin = f"{path}#message[ROWID={row['rowid']}]"
            when = apple_time(row["date"])
            if when is None:
                ctx.skip(origin, "no date")
                continue
            chat_guid = row["chat_guid"] or f"handle:{row['handle']}"
            title = row["display_name"] or row["chat_identifier"] or row["handle"] or "unknown"
            conversation_id = conversation_key(self.name, chat_guid)
            from_me = bool(row["is_from_me"])
            # the owner's own account ("E:mags@icloud.com"), stable whatever --me says later
            me = (row["account"] or "").split(":", 1)[-1] or "me"
            author = me if from_me else (row["handle"] or "unknown")
            author_id = (row["account"] or None) if from_me else row["handle"]
            text = row["text"]
            if not text:
                text = attributed_body_text(row["attributedBody"]) or ""
            text = (
                text.replace(OBJECT_REPLACEMENT, "").strip() if OBJECT_REPLACEMENT in text else text
            )
            extra: dict = {"guid": row["guid"]}
            assoc = row["associated_message_type"] or 0
            if assoc:
                kind = "system"
                verb = TAPBACKS.get(
                    assoc, "removed a reaction from" if assoc >= 3000 else "reacted to"
                )
                text = f"{author} {verb} a message"
                extra["tapback"], extra["author"], author = assoc, author, ""
            elif row["item_type"]:
                kind, extra["author"], author = "system", author, ""
                text = text or f"group event {row['item_type']}"
            elif text.strip():
                kind = "text"
            elif row["cache_has_attachments"]:
                kind, text = "media", "attachment"
            else:
                kind, text = "media", "empty message"
            if row["cache_has_attachments"]:
                extra["attachments"] = True
            reply_to = (
                ids.get(row["thread_originator_guid"]) if row["thread_originator_guid"] else None
            )
            if from_me:
                ctx.owners[conversation_id] = me
            message = Message(
                source=self.name,
                conversation_id=conversation_id,
                conversation_title=str(title),
                conversation_kind="group" if row["style"] == 43 else "direct",
                timestamp=when,
                author=author,
                author_id=author_id,
                text=text,
                kind=kind,  # type: ignore[arg-type]
                is_me=None if kind == "system" else from_me,
                reply_to=reply_to,
                origin=origin,
                extra=extra,
                seq=next_seq(seen, conversation_id, when, author, text),
            )
            ids[row["guid"]] = message.id
            yield message


parser = register_parser(IMessageParser())
