"""Matrix rooms and events as selftune sees them: who is in a room and under what name, which
messenger a bridged room comes from, and each `m.room.message` as a canonical `Message`.

Pure functions over the homeserver's raw JSON, so every rule here is tested without a server.
Bridges (mautrix-whatsapp/-telegram/-signal, Beeper) are recognised by the room's `m.bridge`
state (its `protocol.id`) or by their puppet users (`@whatsapp_4477…:server`,
`@telegram_123:server`, `@signal_…:server`); the platform becomes the message's source, so the
twin's prompt says "WhatsApp" as it did in training.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from selftune.records import Message, conversation_key

SOURCE = "matrix"
# a bridge's network id (m.bridge protocol.id or the puppet prefix) -> the source name
NETWORKS = {
    "whatsapp": "whatsapp",
    "telegram": "telegram",
    "signal": "signal",
    "discord": "discord",
    "slack": "slack",
    "instagram": "instagram",
    "facebook": "messenger",
    "messenger": "messenger",
    "meta": "messenger",
    "imessage": "imessage",
    "twitter": "twitter",
}
_PUPPET = re.compile(r"^@(?P<net>[a-z]+)_[^:]+:", re.ASCII)
_BRIDGE_BOT = re.compile(r"^@(?P<net>[a-z]+)bot:", re.ASCII)
# "Alice (WA)", "Bob (Telegram)", "Carol (Signal)": the bridges' default display-name templates
_NAME_TAG = re.compile(r"\s*\((?:WA|WhatsApp|Telegram|TG|Signal|Discord|Instagram|Messenger)\)$")
# a content field on the messages `matrix bot` sends: ingest marks them `extra.drafted`, so what
# the twin wrote (and the owner chose) can be told from what the owner typed
DRAFTED = "io.selftune.drafted"
MEDIA_TYPES = {"m.image", "m.video", "m.audio", "m.file", "m.location"}
TEXT_TYPES = {"m.text", "m.notice", "m.emote"}


def _network(user_id: str) -> str | None:
    for pattern in (_PUPPET, _BRIDGE_BOT):
        match = pattern.match(user_id)
        if match and match["net"] in NETWORKS:
            return NETWORKS[match["net"]]
    return None


@dataclass
class RoomInfo:
    """A room's current state, as much of it as ingest and the bot need."""

    room_id: str
    owner: str  # the owner's user id
    name: str = ""
    members: dict[str, str] = field(default_factory=dict)  # joined/invited user id -> name
    encrypted: bool = False
    platform: str = SOURCE  # "whatsapp", "telegram", "signal", … or "matrix"
    bots: set[str] = field(default_factory=set)  # bridge bots: not people in the conversation

    @property
    def conversation_id(self) -> str:
        return conversation_key(SOURCE, self.room_id)

    @property
    def people(self) -> list[str]:
        """The people in the room (the bridge's bot left out), the owner included."""
        return [u for u in self.members if u not in self.bots]

    @property
    def kind(self) -> str:
        return "direct" if len(self.people) <= 2 else "group"

    @property
    def title(self) -> str:
        if self.name:
            return self.name
        others = [self.display(u) for u in self.people if u != self.owner]
        return ", ".join(sorted(others)) or self.room_id

    def display(self, user_id: str) -> str:
        """The name a person goes by in this room (a bridge's tag like ' (WA)' dropped)."""
        name = self.members.get(user_id) or user_id.lstrip("@").split(":", 1)[0]
        return _NAME_TAG.sub("", name) or name


def room_info(room_id: str, owner: str, state: list[dict[str, Any]]) -> RoomInfo:
    """A RoomInfo from the room's state events (`/rooms/{id}/state`)."""
    info = RoomInfo(room_id, owner)
    bridge_network = None
    for event in state:
        kind, content = event.get("type"), event.get("content") or {}
        key = event.get("state_key", "")
        if kind == "m.room.member" and content.get("membership") in ("join", "invite"):
            info.members[key] = str(content.get("displayname") or "")
        elif kind == "m.room.name":
            info.name = str(content.get("name") or "")
        elif kind == "m.room.encryption":
            info.encrypted = True
        elif kind in ("m.bridge", "uk.half-shot.bridge"):
            protocol = (content.get("protocol") or {}).get("id", "")
            bridge_network = NETWORKS.get(str(protocol).lower(), bridge_network)
            bot = content.get("bridgebot")
            if isinstance(bot, str):
                info.bots.add(bot)
    networks = {u: _network(u) for u in info.members}
    info.bots |= {u for u in info.members if _BRIDGE_BOT.match(u) and networks[u]}
    puppets = [n for u, n in networks.items() if n and u not in info.bots]
    info.platform = bridge_network or (puppets[0] if puppets else SOURCE)
    return info


@dataclass
class Edit:
    """An `m.replace`: the new text of an earlier message of the same sender."""

    target: str
    sender: str
    content: dict[str, Any]


@dataclass
class Redaction:
    target: str


def _without_reply_fallback(body: str) -> str:
    """A reply's body starts with the quoted message ('> <@bob:x> hi' lines, a blank line)."""
    lines = body.split("\n")
    if not lines or not lines[0].startswith("> "):
        return body
    while lines and lines[0].startswith(">"):
        lines.pop(0)
    if lines and not lines[0].strip():
        lines.pop(0)
    return "\n".join(lines)


def content_text(content: dict[str, Any]) -> tuple[str, str] | None:
    """(kind, text) of a message's content, or None for content that is not a message."""
    msgtype, body = content.get("msgtype"), content.get("body")
    if not isinstance(body, str):
        return None
    if msgtype in TEXT_TYPES:
        text = _without_reply_fallback(body)
        return ("text", text) if text.strip() else ("media", "empty message")
    if msgtype in MEDIA_TYPES:
        return "media", msgtype.removeprefix("m.") + (f": {body}" if body.strip() else "")
    return ("text", body) if body.strip() else None


def classify(event: dict[str, Any]) -> str:
    """'message', 'edit', 'redaction', 'encrypted', 'redacted' or 'other'."""
    kind = event.get("type")
    if kind == "m.room.redaction":
        return "redaction"
    if kind == "m.room.encrypted":
        return "encrypted"
    if kind not in ("m.room.message", "m.sticker") or "state_key" in event:
        return "other"
    content = event.get("content") or {}
    if not content or (event.get("unsigned") or {}).get("redacted_because"):
        return "redacted"
    if (content.get("m.relates_to") or {}).get("rel_type") == "m.replace":
        return "edit"
    return "message"


def redaction_target(event: dict[str, Any]) -> str | None:
    target = event.get("redacts") or (event.get("content") or {}).get("redacts")
    return str(target) if target else None


def origin_of(room_id: str, event_id: str) -> str:
    return f"matrix:{room_id}/{event_id}"


def to_message(event: dict[str, Any], room: RoomInfo, text: str | None = None) -> Message | None:
    """The canonical record of an `m.room.message` (or sticker) event; `text` replaces the
    content's (an edit's new text). None for content that is not a message."""
    content = event.get("content") or {}
    if event.get("type") == "m.sticker":
        found: tuple[str, str] | None = ("media", "sticker")
    else:
        found = content_text(content)
    if found is None:
        return None
    kind, body = found
    if text is not None:
        kind, body = "text", text
    sender = str(event.get("sender", ""))
    extra: dict[str, Any] = {"event_id": event.get("event_id"), "room_id": room.room_id}
    if room.platform != SOURCE:
        extra["bridged"] = True
    if text is not None:
        extra["edited"] = True
    if content.get(DRAFTED):
        extra["drafted"] = True
    if content.get("msgtype") == "m.notice" or sender in room.bots:
        extra["bot"] = True
    reply = (content.get("m.relates_to") or {}).get("m.in_reply_to") or {}
    if reply.get("event_id"):
        extra["reply_to_event"] = reply["event_id"]
    when = datetime.fromtimestamp(int(event.get("origin_server_ts", 0)) / 1000, UTC)
    return Message(
        source=room.platform,
        conversation_id=room.conversation_id,
        conversation_title=room.title,
        conversation_kind=room.kind,
        timestamp=when,
        author=room.display(sender),
        author_id=sender,
        text=body,
        kind=kind,  # type: ignore[arg-type]
        is_me=sender == room.owner,
        origin=origin_of(room.room_id, str(event.get("event_id", ""))),
        extra=extra,
    )


def edit_of(event: dict[str, Any]) -> Edit | None:
    content = event.get("content") or {}
    target = (content.get("m.relates_to") or {}).get("event_id")
    new = content.get("m.new_content")
    if not target or not isinstance(new, dict):
        return None
    return Edit(str(target), str(event.get("sender", "")), new)
