"""X/Twitter archives: `data/tweets.js` (`window.YTD.tweets.part0 = [...]`) and, in a whole
archive folder, `data/direct-messages.js` and `data/account.js` (who the owner is).

Tweets are the owner's posts: `t.co` links are expanded to the URLs they stand for and HTML
entities unescaped. Retweets ("RT @name: …") are someone else's words and are kept with that
author, not as the owner's. Replies keep the id of the tweet they answer in `extra`.
"""

from __future__ import annotations

import html
import json
import re
from collections import Counter
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

from selftune.ingest.common import from_iso, load_json, next_seq, read_head
from selftune.ingest.registry import ParseContext, register_parser
from selftune.records import Message, conversation_key

PREAMBLE = re.compile(r"^\s*window\.YTD\.[\w.]+\s*=\s*")
RETWEET = re.compile(r"^RT @(\w+): ")
TWEET_FILES = ("tweets.js", "tweet.js")


def load_ytd(path: Path, ctx: ParseContext) -> Any:
    """The JSON inside a `window.YTD.x.part0 = [...]` file."""
    text = path.read_text(encoding="utf-8-sig", errors="replace")
    match = PREAMBLE.match(text)
    if not match:
        raise ValueError(f"{path} does not start with 'window.YTD.… ='")
    body = text[match.end() :].rstrip().rstrip(";")
    try:
        return json.loads(body)
    except json.JSONDecodeError:
        return load_json(path, ctx, text=body)


def _archive_file(root: Path, names: tuple[str, ...]) -> Path | None:
    for name in names:
        for candidate in (root / "data" / name, root / name):
            if candidate.is_file():
                return candidate
    return None


def tweet_text(tweet: dict[str, Any]) -> str:
    text = str(tweet.get("full_text") or tweet.get("text") or "")
    entities = tweet.get("entities") or {}
    for url in entities.get("urls") or []:
        if url.get("url") and url.get("expanded_url"):
            text = text.replace(url["url"], url["expanded_url"])
    for media in entities.get("media") or []:
        if media.get("url"):  # the t.co link to the tweet's own photo
            text = text.replace(media["url"], "").rstrip()
    return html.unescape(text)


class TwitterParser:
    name = "twitter"
    description = "X/Twitter archive (tweets.js, direct-messages.js, or the archive folder)"

    def detect(self, path: Path) -> bool:
        if path.is_dir():
            return _archive_file(path, TWEET_FILES) is not None and (
                (path / "data").is_dir() or (path / "account.js").is_file()
            )
        return path.suffix.lower() == ".js" and read_head(path, 200).lstrip().startswith(
            "window.YTD."
        )

    def parse(self, path: Path, ctx: ParseContext) -> Iterator[Message]:
        root = path if path.is_dir() else path.parent
        account: dict[str, Any] = {}
        account_file = _archive_file(root, ("account.js",))
        if account_file:
            data = load_ytd(account_file, ctx)
            if isinstance(data, list) and data and isinstance(data[0], dict):
                account = data[0].get("account") or {}
        handle = str(account.get("username") or next((m.lstrip("@") for m in ctx.me), "me"))
        if path.is_dir():
            files = [
                f
                for f in (
                    _archive_file(root, TWEET_FILES),
                    _archive_file(root, ("direct-messages.js",)),
                )
                if f
            ]
        else:
            files = [path]
        for file in files:
            data = load_ytd(file, ctx)
            if not isinstance(data, list):
                ctx.skip(str(file), "expected a list after 'window.YTD.… ='")
                continue
            if data and isinstance(data[0], dict) and "dmConversation" in data[0]:
                yield from self._dms(file, data, account, handle, ctx)
            else:
                yield from self._tweets(file, data, handle, ctx)

    def _tweets(self, file: Path, data: list, handle: str, ctx: ParseContext) -> Iterator[Message]:
        conversation_id = conversation_key(self.name, "tweets", handle)
        seen: Counter = Counter()
        ctx.owners[conversation_id] = f"@{handle}"
        for i, item in enumerate(data):
            origin = f"{file}#[{i}].tweet"
            tweet = item.get("tweet", item) if isinstance(item, dict) else None
            if not isinstance(tweet, dict):
                ctx.skip(origin, "not a tweet object")
                continue
            try:
                when = datetime.strptime(str(tweet["created_at"]), "%a %b %d %H:%M:%S %z %Y")
            except (KeyError, ValueError) as exc:
                ctx.skip(origin, f"no readable created_at ({exc})")
                continue
            text = tweet_text(tweet)
            retweet = RETWEET.match(text)
            author = f"@{retweet.group(1)}" if retweet else f"@{handle}"
            extra: dict[str, Any] = {"tweet_id": tweet.get("id_str") or tweet.get("id")}
            for key in (
                "in_reply_to_status_id_str",
                "in_reply_to_screen_name",
                "favorite_count",
                "retweet_count",
            ):
                if tweet.get(key) not in (None, "", "0"):
                    extra[key] = tweet[key]
            media = (tweet.get("extended_entities") or tweet.get("entities") or {}).get(
                "media"
            ) or []
            if media:
                extra["attachments"] = [
                    m.get("media_url_https") or m.get("media_url") for m in media
                ]
            kind = "text" if text.strip() else "media"
            yield Message(
                source=self.name,
                conversation_id=conversation_id,
                conversation_title=f"@{handle} on X",
                conversation_kind="channel",
                timestamp=when,
                author=author,
                author_id=None if retweet else handle,
                text=text if kind == "text" else "photo",
                kind=kind,  # type: ignore[arg-type]
                is_me=not retweet,
                origin=origin,
                extra={**extra, "retweet": True} if retweet else extra,
                seq=next_seq(seen, when, author, text),
            )

    def _dms(
        self, file: Path, data: list, account: dict, handle: str, ctx: ParseContext
    ) -> Iterator[Message]:
        my_id = str(account.get("accountId") or "")
        for i, item in enumerate(data):
            convo = item.get("dmConversation") if isinstance(item, dict) else None
            if not isinstance(convo, dict):
                ctx.skip(f"{file}#[{i}]", "not a dmConversation")
                continue
            cid = str(convo.get("conversationId") or i)
            conversation_id = conversation_key(self.name, "dm", cid)
            members = cid.split("-")
            title = "DM " + ", ".join(m for m in members if m != my_id)
            seen: Counter = Counter()
            events = convo.get("messages") or []
            for j, event in reversed(list(enumerate(events))):  # newest first in the archive
                origin = f"{file}#[{i}].dmConversation.messages[{j}]"
                msg = event.get("messageCreate") if isinstance(event, dict) else None
                if not isinstance(msg, dict):
                    continue  # joins/leaves of group DMs carry no text
                try:
                    when = from_iso(str(msg["createdAt"]))
                except (KeyError, ValueError) as exc:
                    ctx.skip(origin, f"no readable createdAt ({exc})")
                    continue
                sender = str(msg.get("senderId", ""))
                text = html.unescape(str(msg.get("text") or ""))
                for url in msg.get("urls") or []:
                    if url.get("url") and url.get("expanded"):
                        text = text.replace(url["url"], url["expanded"])
                is_me = sender == my_id if my_id else None
                if is_me:
                    ctx.owners[conversation_id] = f"@{handle}"
                author = f"@{handle}" if is_me else sender
                yield Message(
                    source=self.name,
                    conversation_id=conversation_id,
                    conversation_title=title,
                    conversation_kind="group" if len(members) > 2 else "direct",
                    timestamp=when,
                    author=author,
                    author_id=sender,
                    text=text if text.strip() else "media",
                    kind="text" if text.strip() else "media",
                    is_me=is_me,
                    origin=origin,
                    extra={"media": msg["mediaUrls"]} if msg.get("mediaUrls") else {},
                    seq=next_seq(seen, when, sender, text),
                )


parser = register_parser(TwitterParser())
