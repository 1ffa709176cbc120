"""`selftune ingest matrix`: the owner's room history read from their homeserver into the store.

Incremental like every ingest: the first run reads each joined room back to its beginning
(`/sync`, then `/messages` back-pagination), later runs start from the sync token the last one
stored in `matrix/ingest.json` and page back only to it. Records go in through the ingest stage's
own loader (`ingest_records`: validation, batches, content-derived ids, edits replacing the
earlier version); a redaction deletes the message from the store.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

from selftune.ingest.importer import ImportSummary, ingest_records
from selftune.matrix.account import Account, load_account
from selftune.matrix.client import MatrixClient
from selftune.matrix.events import (
    RoomInfo,
    classify,
    edit_of,
    origin_of,
    redaction_target,
    room_info,
    to_message,
)
from selftune.matrix.state import load_state, save_state
from selftune.records import Message
from selftune.workspace import Workspace

STATE_FILE = "ingest.json"


@dataclass
class RoomEvents:
    room: RoomInfo
    events: list[dict[str, Any]]


@dataclass
class MatrixImport:
    summary: ImportSummary
    rooms: list[RoomInfo] = field(default_factory=list)
    events: int = 0  # timeline events read
    redacted: int = 0  # messages deleted from the store
    encrypted: dict[str, int] = field(default_factory=dict)  # room title -> events skipped


async def fetch(
    client: MatrixClient, since: str | None, only: set[str] | None = None
) -> tuple[str, list[RoomEvents]]:
    """Every joined room's events since `since` (all of them when None), oldest first, with
    the room's state; returns the next sync token too."""
    result = await client.sync(since)
    rooms = []
    for room_id, timeline in sorted(result.rooms.items()):
        if only and room_id not in only:
            continue
        events = timeline.events
        if timeline.limited and timeline.prev_batch:
            events = await client.history(room_id, timeline.prev_batch, stop=since) + events
        state = await client.state(room_id)
        rooms.append(RoomEvents(room_info(room_id, client.account.user_id, state), events))
    return result.next_batch, rooms


async def to_records(
    client: MatrixClient | None, rooms: list[RoomEvents], out: MatrixImport
) -> tuple[list[Message], set[str]]:
    """The messages of these events, edits applied (an edit of a message read in an earlier
    run fetches that message from the homeserver), and the origins of redacted messages."""
    messages: list[Message] = []
    redacted: set[str] = set()
    for item in rooms:
        room = item.room
        out.rooms.append(room)
        by_event: dict[str, Message] = {}
        originals: dict[str, dict[str, Any]] = {}
        for event in item.events:
            out.events += 1
            what = classify(event)
            if what == "message":
                message = to_message(event, room)
                if message is not None:
                    by_event[event["event_id"]] = message
                    originals[event["event_id"]] = event
            elif what == "edit":
                edit = edit_of(event)
                if edit is None or origin_of(room.room_id, edit.target) in redacted:
                    continue
                original = originals.get(edit.target)
                if original is None and client is not None:
                    original = await client.event(room.room_id, edit.target)
                    if original is not None and classify(original) != "message":
                        original = None
                if original is None or original.get("sender") != edit.sender:
                    continue  # only the sender may edit a message
                found = to_message(original, room, text=_edit_text(edit.content))
                if found is not None:
                    by_event[edit.target] = found
                    originals[edit.target] = original
            elif what == "redaction":
                target = redaction_target(event)
                if target:
                    by_event.pop(target, None)
                    redacted.add(origin_of(room.room_id, target))
            elif what == "encrypted":
                out.encrypted[room.title] = out.encrypted.get(room.title, 0) + 1
        for message in by_event.values():
            reply = message.extra.get("reply_to_event")
            if reply in by_event:
                message.reply_to = by_event[reply].id
        messages.extend(by_event.values())
    return messages, redacted


def _edit_text(content: dict[str, Any]) -> str:
    body = content.get("body")
    return body if isinstance(body, str) and body.strip() else "empty message"


async def _ingest(ws: Workspace, account: Account, me: tuple[str, ...]) -> MatrixImport:
    state = load_state(ws.root, STATE_FILE)
    if state.get("user_id") not in (None, account.user_id):
        state = {}  # another account: its token means nothing here
    only = set(ws.config.matrix.ingest_rooms) or None
    async with MatrixClient(account) as client:
        next_batch, rooms = await fetch(client, state.get("since"), only)
        out = MatrixImport(ImportSummary(f"matrix:{account.user_id}", "matrix"))
        messages, redacted = await to_records(client, rooms, out)
    label = f"matrix:{account.user_id}"
    with ws.open_store() as store:
        out.summary = ingest_records(
            store, label, "matrix", lambda ctx: iter(messages), (*me, account.user_id)
        )
        out.redacted = len(store.delete_messages_from(redacted))
    for title, count in out.encrypted.items():
        out.summary.skipped.append(_encrypted_skip(title, count))
    save_state(ws.root, STATE_FILE, {"user_id": account.user_id, "since": next_batch})
    return out


def _encrypted_skip(title: str, count: int):  # type: ignore[no-untyped-def]
    from selftune.ingest.registry import Skipped

    return Skipped(
        f"matrix room '{title}'",
        f"{count} end-to-end encrypted event(s) skipped: selftune's Matrix client does not "
        "decrypt (turn off encryption for bridged rooms, or read them through the bridge's own "
        "export); docs/matrix.md",
    )


async def _rooms(account: Account) -> list[RoomInfo]:
    async with MatrixClient(account) as client:
        joined = await client.sync(None, limit=1)
        return [
            room_info(room_id, account.user_id, await client.state(room_id))
            for room_id in sorted(joined.rooms)
        ]


def joined_rooms(ws: Workspace) -> list[RoomInfo]:
    """The rooms the owner has joined, with their names, platforms and members."""
    return asyncio.run(_rooms(load_account(ws.root)))


def ingest_matrix(ws: Workspace, me: tuple[str, ...] = ()) -> MatrixImport:
    """Read what is new on the owner's homeserver into the store (see the module docstring)."""
    account = load_account(ws.root)
    return asyncio.run(_ingest(ws, account, tuple(ws.config.me) + tuple(me)))
