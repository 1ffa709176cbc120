"""Slack workspace exports: the unzipped folder with `users.json`, `channels.json` (and
`groups.json`, `dms.json`, `mpims.json`) and one folder per conversation of `YYYY-MM-DD.json` files.

Slack markup is turned into plain text: `<@U123>` becomes `@name`, `<#C1|general>` `#general`,
`<https://x|label>` `label (https://x)`, and `&amp;`/`&lt;`/`&gt;` are unescaped. Thread replies
point at their parent. Joins, topic changes and other `subtype`s are system messages; the owner is
whoever `--me` names (by user name, real name, display name, email or id).
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from selftune.ingest.common import from_epoch, load_json, next_seq
from selftune.ingest.registry import ParseContext, register_parser
from selftune.records import Message, conversation_key

MARKUP = re.compile(r"<([^>|]+)(?:\|([^>]*))?>")
USER_SUBTYPES = ("thread_broadcast", "file_share", "me_message", "bot_message", None)
LISTS = (
    ("channels.json", "channel"),
    ("groups.json", "group"),
    ("mpims.json", "group"),
    ("dms.json", "direct"),
)


def _people(root: Path, ctx: ParseContext) -> dict[str, dict[str, str]]:
    users = load_json(root / "users.json", ctx) if (root / "users.json").is_file() else []
    out = {}
    for user in users if isinstance(users, list) else []:
        if not isinstance(user, dict) or "id" not in user:
            continue
        profile = user.get("profile") or {}
        out[user["id"]] = {
            "name": profile.get("display_name")
            or user.get("real_name")
            or user.get("name")
            or user["id"],
            "handles": [
                str(v)
                for v in (
                    user.get("name"),
                    user.get("real_name"),
                    profile.get("display_name"),
                    profile.get("real_name"),
                    profile.get("email"),
                    user["id"],
                )
                if v
            ],
        }
    return out  # type: ignore[return-value]


def plain_text(text: str, people: dict[str, dict[str, Any]]) -> str:
    """Slack markup as the reader saw it."""

    def replace(match: re.Match) -> str:
        target, label = match.group(1), match.group(2)
        if target.startswith("@"):
            return "@" + (label or people.get(target[1:], {}).get("name", target[1:]))
        if target.startswith("#"):
            return "#" + (label or target[1:])
        if target.startswith("!"):
            return "@" + (label or target[1:].split("^")[0])
        return f"{label} ({target})" if label and label != target else target

    text = MARKUP.sub(replace, text)
    return text.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")


class SlackParser:
    name = "slack"
    description = "Slack workspace export folder (users.json, channels.json, <channel>/<date>.json)"

    def detect(self, path: Path) -> bool:
        return (
            path.is_dir()
            and (path / "users.json").is_file()
            and any((path / name).is_file() for name, _ in LISTS)
        )

    def parse(self, path: Path, ctx: ParseContext) -> Iterator[Message]:
        people = _people(path, ctx)
        mine = {uid for uid, p in people.items() if ctx.is_me(*p["handles"])}
        for list_name, kind in LISTS:
            if not (path / list_name).is_file():
                continue
            listed = load_json(path / list_name, ctx)
            for channel in listed if isinstance(listed, list) else []:
                if not isinstance(channel, dict):
                    continue
                folder = path / str(channel.get("name") or channel.get("id"))
                if not folder.is_dir():
                    folder = path / str(channel.get("id"))
                if not folder.is_dir():
                    continue
                yield from self._channel(folder, channel, kind, people, mine, ctx)

    def _channel(
        self,
        folder: Path,
        channel: dict[str, Any],
        kind: str,
        people: dict[str, dict[str, Any]],
        mine: set[str],
        ctx: ParseContext,
    ) -> Iterator[Message]:
        if kind == "direct":
            others = [
                people.get(m, {}).get("name", m)
                for m in channel.get("members", [])
                if m not in mine
            ]
            title = ", ".join(others) or str(channel.get("id"))
        else:
            title = f"#{channel.get('name') or channel.get('id')}"
        conversation_id = conversation_key(self.name, channel.get("id") or title)
        by_ts: dict[str, str] = {}
        seen: Counter = Counter()
        owner_name = None
        for day in sorted(folder.glob("*.json")):
            items = load_json(day, ctx)
            if not isinstance(items, list):
                ctx.skip(str(day), "expected a list of messages")
                continue
            for i, msg in enumerate(items):
                origin = f"{day}#[{i}]"
                if not isinstance(msg, dict) or "ts" not in msg:
                    ctx.skip(origin, "not a message (no 'ts')")
                    continue
                try:
                    when = from_epoch(float(msg["ts"]))
                except (TypeError, ValueError) as exc:
                    ctx.skip(origin, f"unreadable ts ({exc})")
                    continue
                uid = msg.get("user") or msg.get("bot_id")
                profile = msg.get("user_profile") or {}
                author = str(
                    people.get(uid, {}).get("name")
                    or profile.get("display_name")
                    or profile.get("real_name")
                    or msg.get("username")
                    or uid
                    or ""
                )
                text = plain_text(str(msg.get("text") or ""), people)
                extra: dict[str, Any] = {}
                files = [
                    f.get("name") or f.get("title")
                    for f in msg.get("files") or []
                    if isinstance(f, dict)
                ]
                if files:
                    extra["attachments"] = files
                if msg.get("reactions"):
                    extra["reactions"] = [
                        {"reaction": r.get("name"), "count": r.get("count")}
                        for r in msg["reactions"]
                        if isinstance(r, dict)
                    ]
                if msg.get("edited"):
                    extra["edited"] = True
                subtype = msg.get("subtype")
                if subtype == "tombstone" or text == "This message was deleted.":
                    kind_ = "deleted"
                elif subtype not in USER_SUBTYPES:
                    kind_ = "system"
                    extra["subtype"], extra["author"], author = subtype, author, ""
                elif text.strip():
                    kind_ = "text"
                else:
                    kind_, text = "media", ", ".join(str(f) for f in files) or "attachment"
                reply_to = None
                if msg.get("thread_ts") and msg["thread_ts"] != msg["ts"]:
                    reply_to = by_ts.get(str(msg["thread_ts"]))
                is_me = None
                if kind_ != "system" and mine:
                    is_me = uid in mine
                    if is_me:
                        owner_name = author
                message = Message(
                    source=self.name,
                    conversation_id=conversation_id,
                    conversation_title=title,
                    conversation_kind=kind,
                    timestamp=when,
                    author=author,
                    author_id=uid,
                    text=text,
                    kind=kind_,  # type: ignore[arg-type]
                    is_me=is_me,
                    reply_to=reply_to,
                    origin=origin,
                    extra=extra,
                    seq=next_seq(seen, when, author, text),
                )
                by_ts[str(msg["ts"])] = message.id
                yield message
        if owner_name:
            ctx.owners[conversation_id] = owner_name


parser = register_parser(SlackParser())
