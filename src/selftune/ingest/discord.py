"""Discord channels and DMs exported as JSON by DiscordChatExporter (`--format Json`).

Each file is one channel: `guild`, `channel` and `messages` with `author` (`name`, `nickname`,
`id`), ISO `timestamp`, `content`, `attachments`, `stickers`, `reactions` and `reference`
(replies). Join, pin, call and other non-`Default`/`Reply` types are system messages. The owner is
whoever `--me` names (by name, nickname or id), or in a DM the author the channel is not named after.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from selftune.ingest.common import from_iso, load_json, next_seq, read_head
from selftune.ingest.registry import ParseContext, register_parser
from selftune.records import Message, conversation_key

USER_TYPES = ("Default", "Reply", "ThreadStarterMessage", "ChatInputCommand", "ContextMenuCommand")


class DiscordParser:
    name = "discord"
    description = "Discord channel or DM exported by DiscordChatExporter (JSON)"

    def detect(self, path: Path) -> bool:
        if not path.is_file() or path.suffix.lower() != ".json":
            return False
        head = read_head(path, 4096)
        return '"guild"' in head and '"channel"' in head

    def parse(self, path: Path, ctx: ParseContext) -> Iterator[Message]:
        data = load_json(path, ctx)
        if not isinstance(data, dict) or not isinstance(data.get("messages"), list):
            ctx.skip(str(path), "expected an object with 'guild', 'channel' and 'messages'")
            return
        guild = data.get("guild") or {}
        channel = data.get("channel") or {}
        channel_type = str(channel.get("type", ""))
        name = str(channel.get("name") or channel.get("id") or path.stem)
        direct = channel_type == "DirectTextChat"
        title = (
            name
            if direct or guild.get("name") in (None, "Direct Messages")
            else f"{guild['name']} #{name}"
        )
        conversation_id = conversation_key(self.name, channel.get("id") or title)
        kind = (
            "direct" if direct else "group" if channel_type == "DirectGroupTextChat" else "channel"
        )
        authors: dict[str, set[str]] = {}
        for msg in data["messages"]:
            author = msg.get("author") if isinstance(msg, dict) else None
            if isinstance(author, dict):
                names = {str(author.get(k)) for k in ("name", "nickname", "id") if author.get(k)}
                authors[str(author.get("id") or author.get("name"))] = names
        owner = next((a for a, names in authors.items() if ctx.is_me(*names)), None)
        if owner is None and direct and len(authors) == 2:
            owner = next((a for a, names in authors.items() if name not in names), None)
        ids: dict[str, str] = {}
        seen: Counter = Counter()
        owner_name = None
        for i, msg in enumerate(data["messages"]):
            origin = f"{path}#messages[{i}]"
            if not isinstance(msg, dict):
                ctx.skip(origin, "a message that is not a JSON object")
                continue
            try:
                when = from_iso(str(msg["timestamp"]))
            except (KeyError, ValueError) as exc:
                ctx.skip(origin, f"no readable timestamp ({exc})")
                continue
            author_info: dict[str, Any] = (
                msg.get("author") if isinstance(msg.get("author"), dict) else {}
            )
            author = str(author_info.get("nickname") or author_info.get("name") or "")
            author_id = str(author_info.get("id") or author_info.get("name") or "") or None
            text = str(msg.get("content") or "")
            extra: dict[str, Any] = {}
            attachments = [a.get("fileName") or a.get("url") for a in msg.get("attachments") or []]
            stickers = [s.get("name") for s in msg.get("stickers") or [] if isinstance(s, dict)]
            if attachments:
                extra["attachments"] = attachments
            if stickers:
                extra["stickers"] = stickers
            reactions = [
                {"emoji": (r.get("emoji") or {}).get("name"), "count": r.get("count")}
                for r in msg.get("reactions") or []
                if isinstance(r, dict)
            ]
            if reactions:
                extra["reactions"] = reactions
            if msg.get("timestampEdited"):
                extra["edited"] = msg["timestampEdited"]
            if author_info.get("isBot"):
                extra["bot"] = True
            if str(msg.get("type", "Default")) not in USER_TYPES:
                kind_ = "system"
                text = text or str(msg.get("type"))
                extra["author"], author = author, ""
            elif text.strip():
                kind_ = "text"
            elif attachments or stickers or msg.get("embeds"):
                kind_ = "media"
                text = ", ".join(str(x) for x in attachments + stickers) or "embed"
            else:
                kind_, text = "media", "empty message"
            reply_to = None
            reference = msg.get("reference")
            if isinstance(reference, dict) and reference.get("messageId"):
                reply_to = ids.get(str(reference["messageId"]))
            is_me = None
            if kind_ != "system" and owner is not None:
                is_me = author_id == owner
                if is_me:
                    owner_name = author
            message = Message(
                source=self.name,
                conversation_id=conversation_id,
                conversation_title=title,
                conversation_kind=kind,
                timestamp=when,
                author=author,
                author_id=author_id,
                text=text,
                kind=kind_,  # type: ignore[arg-type]
                is_me=is_me,
                reply_to=reply_to,
                origin=origin,
                extra=extra,
                seq=next_seq(seen, when, author, text),
            )
            if msg.get("id"):
                ids[str(msg["id"])] = message.id
            yield message
        if owner_name:
            ctx.owners[conversation_id] = owner_name


parser = register_parser(DiscordParser())
