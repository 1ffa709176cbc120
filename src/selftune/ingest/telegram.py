"""Telegram Desktop JSON exports: `result.json` of one chat, or of a full export (`chats.list`).

`text` is a string or a list of strings and entity objects (bold, links, mentions…); it is
flattened to the text the owner typed: a `text_link` keeps its visible words, its URL goes to
`extra["links"]`. Service messages (pins, joins, calls) become system
messages; stickers, photos, voice notes and files become media messages (a caption makes them
text messages with the attachment noted in `extra`). The owner is read from
`personal_information`, from the Saved Messages chat, or from who a one-to-one chat is not with.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from selftune.ingest.common import from_epoch, from_iso, load_json, next_seq, read_head
from selftune.ingest.registry import ParseContext, register_parser
from selftune.records import Message, conversation_key

GROUP_TYPES = ("private_group", "private_supergroup", "public_supergroup")
CHANNEL_TYPES = ("private_channel", "public_channel")
MEDIA_FIELDS = ("photo", "file", "sticker_emoji", "media_type", "poll", "location_information")


def flatten_text(text: Any, links: list[dict[str, str]] | None = None) -> str:
    """Telegram's `text` (a string, or a list of strings and entities) as the owner typed it.
    A `text_link` keeps its visible text; its URL goes to `links` (when given), not the text."""
    if isinstance(text, str):
        return text
    if not isinstance(text, list):
        return ""
    out = []
    for part in text:
        if isinstance(part, str):
            out.append(part)
        elif isinstance(part, dict):
            piece = str(part.get("text", ""))
            href = part.get("href")
            if href and href != piece:
                if links is not None:
                    links.append({"text": piece, "url": str(href)})
                piece = piece or str(href)
            out.append(piece)
    return "".join(out)


def _timestamp(msg: dict[str, Any]):  # type: ignore[no-untyped-def]
    if msg.get("date_unixtime"):
        return from_epoch(int(msg["date_unixtime"]))
    return from_iso(str(msg["date"]))


def _media_label(msg: dict[str, Any]) -> str | None:
    """What the attachment is, or None for a message without one."""
    if msg.get("media_type") == "sticker":
        return f"sticker {msg.get('sticker_emoji', '')}".strip()
    if msg.get("media_type"):
        return str(msg["media_type"]).replace("_", " ")
    if "photo" in msg:
        return "photo"
    if "poll" in msg:
        return (
            f"poll: {msg['poll'].get('question', '')}" if isinstance(msg["poll"], dict) else "poll"
        )
    if "location_information" in msg:
        return "location"
    if "file" in msg:
        return f"file {Path(str(msg['file'])).name}"
    if "contact_information" in msg:
        return "contact"
    return None


class TelegramParser:
    name = "telegram"
    description = "Telegram Desktop JSON export (result.json: one chat or the full export)"

    def detect(self, path: Path) -> bool:
        if path.is_dir():  # an export folder: result.json beside photos/, files/…
            return (path / "result.json").is_file() and self.detect(path / "result.json")
        if path.suffix.lower() != ".json":
            return False
        head = read_head(path, 8192)
        if '"personal_information"' in head or '"date_unixtime"' in head:
            return True
        return '"messages"' in head and any(
            f'"type": "{kind}"' in head
            for kind in (
                "personal_chat",
                "saved_messages",
                "bot_chat",
                *GROUP_TYPES,
                *CHANNEL_TYPES,
            )
        )

    def parse(self, path: Path, ctx: ParseContext) -> Iterator[Message]:
        if path.is_dir():
            for file in sorted(path.glob("*.json")):
                if self.detect(file):
                    yield from self._export(file, ctx)
        else:
            yield from self._export(path, ctx)

    def _export(self, file: Path, ctx: ParseContext) -> Iterator[Message]:
        data = load_json(file, ctx)
        if not isinstance(data, dict):
            ctx.skip(str(file), "expected a JSON object at the top level (a Telegram export)")
            return
        me_id = None
        info = data.get("personal_information")
        if isinstance(info, dict) and info.get("user_id") is not None:
            me_id = f"user{info['user_id']}"
        if isinstance(data.get("chats"), dict):
            chats = [
                (f"chats.list[{i}]", chat) for i, chat in enumerate(data["chats"].get("list") or [])
            ] + [
                (f"left_chats.list[{i}]", chat)
                for i, chat in enumerate((data.get("left_chats") or {}).get("list") or [])
            ]
        else:
            chats = [("", data)]
        if me_id is None:  # Saved Messages holds only the owner's own messages
            for _, chat in chats:
                if isinstance(chat, dict) and chat.get("type") == "saved_messages":
                    senders = {
                        m.get("from_id") for m in chat.get("messages") or [] if m.get("from_id")
                    }
                    if len(senders) == 1:
                        me_id = senders.pop()
        for where, chat in chats:
            if not isinstance(chat, dict):
                ctx.skip(f"{file}#{where}", "a chat that is not a JSON object")
                continue
            yield from self._chat(chat, where, file, me_id, ctx)

    def _chat(
        self, chat: dict[str, Any], where: str, file: Path, me_id: str | None, ctx: ParseContext
    ) -> Iterator[Message]:
        chat_type = str(chat.get("type", ""))
        title = str(chat.get("name") or ("Saved Messages" if chat_type == "saved_messages" else ""))
        conversation_id = conversation_key(self.name, chat.get("id", title))
        kind = (
            "group"
            if chat_type in GROUP_TYPES
            else "channel"
            if chat_type in CHANNEL_TYPES
            else "direct"
        )
        owner_id = me_id
        if owner_id is None and chat_type == "personal_chat" and chat.get("id") is not None:
            others = {m.get("from_id") for m in chat.get("messages") or [] if isinstance(m, dict)}
            mine = others - {f"user{chat['id']}", None}
            if len(mine) == 1:
                owner_id = mine.pop()
        ids: dict[Any, str] = {}
        seen: Counter = Counter()
        owner_name = None
        prefix = f"{where}." if where else ""
        for i, msg in enumerate(chat.get("messages") or []):
            origin = f"{file}#{prefix}messages[{i}]"
            if not isinstance(msg, dict):
                ctx.skip(origin, "a message that is not a JSON object")
                continue
            try:
                when = _timestamp(msg)
            except (KeyError, ValueError, TypeError, OverflowError) as exc:
                ctx.skip(origin, f"no readable date ({type(exc).__name__}: {exc})")
                continue
            links: list[dict[str, str]] = []
            text = flatten_text(msg.get("text", ""), links)
            extra: dict[str, Any] = {"telegram_id": msg.get("id")}
            if links:
                extra["links"] = links
            if msg.get("type") == "service":
                author, author_id, kind_ = "", msg.get("actor_id"), "system"
                action = str(msg.get("action", "")).replace("_", " ")
                actor = msg.get("actor") or ""
                text = " ".join(p for p in (str(actor), action, text) if p).strip() or "service"
            else:
                author = str(msg.get("from") or msg.get("author") or title or "")
                author_id = msg.get("from_id")
                label = _media_label(msg)
                kind_ = "text" if text.strip() else "media" if label else "text"
                if label:
                    extra["attachment"] = label
                    if kind_ == "media":
                        text = label
            for field in ("forwarded_from", "via_bot", "edited"):
                if msg.get(field):
                    extra[field] = msg[field]
            reply_to = None
            if msg.get("reply_to_message_id") is not None:
                reply_to = ids.get(msg["reply_to_message_id"])
                if reply_to is None:
                    extra["reply_to_telegram_id"] = msg["reply_to_message_id"]
            is_me = None
            if kind_ != "system":
                if owner_id is not None:
                    is_me = author_id == owner_id
                elif ctx.me:
                    is_me = bool(ctx.is_me(author, author_id))
                if is_me:
                    owner_name = author
            message = Message(
                source=self.name,
                conversation_id=conversation_id,
                conversation_title=title,
                conversation_kind=kind,
                timestamp=when,
                author=author,
                author_id=str(author_id) if author_id is not None else None,
                text=text,
                kind=kind_,  # type: ignore[arg-type]
                is_me=is_me,
                reply_to=reply_to,
                origin=origin,
                extra=extra,
                seq=next_seq(seen, when, author, text),
            )
            if msg.get("id") is not None:
                ids[msg["id"]] = message.id
            yield message
        if owner_name:
            ctx.owners[conversation_id] = owner_name


parser = register_parser(TelegramParser())
