"""Facebook Messenger and Instagram direct messages from "Download your information" (JSON).

A conversation is a folder (`messages/inbox/<name>_<id>/`) of numbered files `message_1.json`,
`message_2.json`…, newest first; they are read together and yielded oldest first. Both apps write
UTF-8 bytes as `\\u00XX` escapes (mojibake such as `MÃ¼ller`); text is repaired, and text that is
not mojibake is left alone. Unsent messages become deleted, photos/videos/stickers media, and
reactions and shared links are kept in `extra`. The newer end-to-end-encrypted Messenger download
(`senderName`, `text`, `timestamp`, `isUnsent`) is read too.

The owner is whoever `--me`/twin.yaml names, else the one participant of every conversation in
the export, else the participant of a one-to-one chat that it is not titled after.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from selftune.ingest.common import fix_mojibake, from_epoch, load_json, next_seq
from selftune.ingest.registry import ParseContext, register_parser
from selftune.records import Message, conversation_key

MESSAGE_FILE = re.compile(r"^message_(\d+)\.json$")
MEDIA_FIELDS = ("photos", "videos", "gifs", "audio_files", "files", "sticker", "media")
UNSENT_TEXT = re.compile(r"^(You|.+) unsent a message\.?$")
REACTION_TEXT = re.compile(r"^(Reacted .{1,12} to your message|Liked a message)\s*$")


def _is_instagram(path: Path) -> bool:
    return any("instagram" in part.lower() for part in path.resolve().parts)


def _thread_dirs(path: Path) -> list[Path]:
    """Every conversation folder under `path` (or `path` itself, or a file's folder)."""
    if path.is_file():
        return [path.parent]
    if any(MESSAGE_FILE.match(p.name) for p in path.iterdir()):
        return [path]
    return sorted({p.parent for p in path.rglob("message_*.json") if MESSAGE_FILE.match(p.name)})


def _uris(msg: dict[str, Any]) -> list[str]:
    out = []
    for field in MEDIA_FIELDS:
        value = msg.get(field)
        items = value if isinstance(value, list) else [value] if isinstance(value, dict) else []
        out += [f"{field}:{item.get('uri', '')}" for item in items if isinstance(item, dict)]
    return out


class MetaParser:
    def __init__(self, name: str, description: str, instagram: bool):
        self.name = name
        self.description = description
        self.instagram = instagram

    def detect(self, path: Path) -> bool:
        if path.is_file():
            found = bool(MESSAGE_FILE.match(path.name))
        elif path.is_dir():
            found = any(MESSAGE_FILE.match(p.name) for p in path.iterdir()) or any(
                (path / sub).is_dir()
                for sub in (
                    "messages/inbox",
                    "your_activity_across_facebook/messages/inbox",
                    "your_facebook_activity/messages/inbox",
                    "your_instagram_activity/messages/inbox",
                    "inbox",
                )
            )
        else:
            found = False
        return found and _is_instagram(path) == self.instagram

    def parse(self, path: Path, ctx: ParseContext) -> Iterator[Message]:
        threads = []
        for folder in _thread_dirs(path):
            files = sorted(
                (p for p in folder.iterdir() if MESSAGE_FILE.match(p.name)),
                key=lambda p: int(MESSAGE_FILE.match(p.name).group(1)),  # type: ignore[union-attr]
            )
            parts = []
            for file in files:
                data = load_json(file, ctx)
                if isinstance(data, dict):
                    parts.append((file, data))
                else:
                    ctx.skip(str(file), "expected a JSON object with 'messages'")
            if parts:
                threads.append((folder, parts))
        owner = self._export_owner([self._head(parts) for _, parts in threads], ctx)
        for folder, parts in threads:
            yield from self._thread(folder, parts, owner, ctx)

    def _head(self, parts: list[tuple[Path, dict]]) -> tuple[str, list[str]]:
        head = parts[0][1]
        title = fix_mojibake(str(head.get("title") or head.get("threadName") or ""))
        return title, self._participants(head)

    @staticmethod
    def _export_owner(heads: list[tuple[str, list[str]]], ctx: ParseContext) -> str | None:
        """The person whose export this is: named by --me, in every conversation, or the one a
        one-to-one chat is not titled after."""
        for _, participants in heads:
            for name in participants:
                if ctx.is_me(name):
                    return name
        votes: Counter = Counter()
        for title, participants in heads:
            if len(participants) == 2 and title in participants:
                votes[next(p for p in participants if p != title)] += 1
        if len(heads) > 1:
            common = set.intersection(*(set(p) for _, p in heads))
            if len(common) == 1:
                votes[common.pop()] += len(heads)
        return votes.most_common(1)[0][0] if votes else None

    @staticmethod
    def _participants(data: dict[str, Any]) -> list[str]:
        out = []
        for p in data.get("participants") or []:
            name = p.get("name") if isinstance(p, dict) else p
            if isinstance(name, str):
                out.append(fix_mojibake(name))
        return out

    def _thread(
        self, folder: Path, parts: list[tuple[Path, dict]], owner: str | None, ctx: ParseContext
    ) -> Iterator[Message]:
        head = parts[0][1]
        participants = self._participants(head)
        title = fix_mojibake(str(head.get("title") or head.get("threadName") or folder.name))
        thread_path = str(head.get("thread_path") or folder.name)
        conversation_id = conversation_key(self.name, thread_path.rsplit("/", 1)[-1])
        if owner not in participants:
            owner = None
        if owner:
            ctx.owners[conversation_id] = owner
        kind = "group" if len(participants) > 2 else "direct"
        rows = []
        for file, data in parts:
            for i, msg in enumerate(data.get("messages") or []):
                origin = f"{file}#messages[{i}]"
                if not isinstance(msg, dict):
                    ctx.skip(origin, "a message that is not a JSON object")
                    continue
                stamp = msg.get("timestamp_ms", msg.get("timestamp"))
                if not isinstance(stamp, int | float):
                    ctx.skip(origin, "no timestamp_ms")
                    continue
                rows.append((stamp, origin, msg))
        rows.sort(key=lambda row: row[0])  # files and messages are newest first
        seen: Counter = Counter()
        for stamp, origin, msg in rows:
            when = from_epoch(stamp / 1000)
            author = fix_mojibake(str(msg.get("sender_name") or msg.get("senderName") or ""))
            text = fix_mojibake(str(msg.get("content") or msg.get("text") or ""))
            extra: dict[str, Any] = {}
            attachments = _uris(msg)
            if attachments:
                extra["attachments"] = attachments
            reactions = [
                {
                    "actor": fix_mojibake(str(r.get("actor", ""))),
                    "reaction": fix_mojibake(str(r.get("reaction", ""))),
                }
                for r in msg.get("reactions") or []
                if isinstance(r, dict)
            ]
            if reactions:
                extra["reactions"] = reactions
            share = msg.get("share")
            if isinstance(share, dict):
                extra["share"] = {k: fix_mojibake(str(v)) for k, v in share.items()}
                link = share.get("link")
                if link and link not in text:
                    text = f"{text}\n{link}".strip()
            if msg.get("is_unsent") or msg.get("isUnsent") or UNSENT_TEXT.match(text):
                kind_ = "deleted"
            elif (
                REACTION_TEXT.match(text)
                or msg.get("type") in ("Subscribe", "Unsubscribe")
                or (not author and msg.get("type") not in ("Generic", "text", None))
            ):
                kind_ = "system"
            elif msg.get("call_duration") is not None or msg.get("type") == "Call":
                kind_, text = "system", text or f"call ({msg.get('call_duration', 0)} s)"
            elif text.strip():
                kind_ = "text"
            elif attachments:
                kind_, text = "media", attachments[0].split(":", 1)[0]
            else:
                kind_, text = "media", "empty message"
            is_me = None if kind_ == "system" or owner is None else author == owner
            if kind_ == "system" and author:
                extra["author"] = author
            yield Message(
                source=self.name,
                conversation_id=conversation_id,
                conversation_title=title,
                conversation_kind=kind,
                timestamp=when,
                author=author if kind_ != "system" else "",
                text=text,
                kind=kind_,  # type: ignore[arg-type]
                is_me=is_me,
                origin=origin,
                extra=extra,
                seq=next_seq(seen, stamp, author, text),
            )


messenger = register_parser(
    MetaParser(
        "messenger",
        "Facebook Messenger 'Download your information' JSON (message_N.json folders)",
        instagram=False,
    )
)
instagram = register_parser(
    MetaParser(
        "instagram",
        "Instagram 'Download your information' direct messages (message_N.json folders)",
        instagram=True,
    )
)
