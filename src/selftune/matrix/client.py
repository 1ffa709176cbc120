"""The Matrix I/O, and nothing else: a thin async layer over matrix-nio's client that speaks in the
homeserver's raw event dicts, so everything that decides (events.py, decide.py) is plain Python
tested without a server.

Encryption is not switched on: an end-to-end encrypted room's messages arrive as
`m.room.encrypted` and are passed over by the callers with a line saying so.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from selftune.errors import SelftuneError
from selftune.matrix.account import Account

PAGE = 100  # events per /messages page
MAX_RETRIES = 3  # tries of one request when the connection fails or times out


def _nio() -> Any:
    try:
        import nio
    except ImportError as exc:  # the optional `matrix` extra
        raise SelftuneError(
            "the Matrix commands need matrix-nio: pip install 'selftune[matrix]'"
        ) from exc
    # its retry notices ("Timed out, sleeping for 0s") would reach the terminal bare; a request
    # that still fails after its retries becomes a SelftuneError that says so
    logging.getLogger("nio").setLevel(logging.ERROR)
    return nio


@dataclass
class RoomTimeline:
    """What one /sync says about a joined room: new events (oldest first), and whether older
    ones were left out (`limited`, fetch them back from `prev_batch`)."""

    room_id: str
    events: list[dict[str, Any]]
    limited: bool
    prev_batch: str | None


@dataclass
class SyncResult:
    next_batch: str
    rooms: dict[str, RoomTimeline]
    invited: list[str]


class MatrixClient:
    """One logged-in session (`async with MatrixClient(account) as client:`)."""

    def __init__(self, account: Account, timeout: float = 30):
        nio = _nio()
        import aiohttp

        config = nio.AsyncClientConfig(
            encryption_enabled=False,
            store_sync_tokens=False,
            request_timeout=timeout,
            max_timeouts=MAX_RETRIES,  # nio retries a lost connection forever otherwise
        )
        self._aiohttp = aiohttp
        self.account = account
        self._nio = nio
        self._client = nio.AsyncClient(
            account.homeserver, account.user_id, device_id=account.device_id, config=config
        )
        self._client.access_token = account.access_token
        self._client.user_id = account.user_id

    async def __aenter__(self) -> MatrixClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self._client.close()

    async def _call(self, request: Any, what: str) -> Any:
        """The response to `request`, an awaitable of nio's; an error response or a homeserver
        that cannot be reached becomes a SelftuneError that says which and what to do."""
        try:
            response = await request
        except (OSError, TimeoutError, self._aiohttp.ClientError) as exc:
            raise SelftuneError(
                f"could not reach the homeserver {self.account.homeserver} for {what}: {exc}"
            ) from exc
        return self._check(response, what)

    def _check(self, response: Any, what: str) -> Any:
        if isinstance(response, self._nio.responses.ErrorResponse):
            code = getattr(response, "status_code", None) or ""
            raise SelftuneError(
                f"the homeserver {self.account.homeserver} refused {what}: {code} "
                f"{response.message}".replace("  ", " ")
                + (
                    "; log in again with `selftune matrix login`"
                    if code in ("M_UNKNOWN_TOKEN", "M_MISSING_TOKEN")
                    else ""
                )
            )
        return response

    async def whoami(self) -> str:
        return (await self._call(self._client.whoami(), "whoami")).user_id

    async def sync(self, since: str | None, timeout_ms: int = 0, limit: int = 50) -> SyncResult:
        """One /sync: the whole state on the first call (since None), what is new after."""
        sync_filter = {
            "room": {"timeline": {"limit": limit}, "state": {"lazy_load_members": False}},
            "presence": {"not_types": ["*"]},
            "account_data": {"not_types": ["*"]},
        }
        response = await self._call(
            self._client.sync(
                timeout=timeout_ms, sync_filter=sync_filter, since=since, full_state=since is None
            ),
            "a /sync",
        )
        rooms = {}
        for room_id, info in response.rooms.join.items():
            timeline = info.timeline
            rooms[room_id] = RoomTimeline(
                room_id,
                [event.source for event in timeline.events],
                bool(timeline.limited),
                timeline.prev_batch,
            )
        return SyncResult(response.next_batch, rooms, list(response.rooms.invite))

    async def history(
        self, room_id: str, start: str, stop: str | None = None
    ) -> list[dict[str, Any]]:
        """Every event before `start` back to `stop` (a sync token; None: the room's
        beginning), oldest first."""
        events: list[dict[str, Any]] = []
        token: str | None = start
        while token:
            response = await self._call(
                self._client.room_messages(
                    room_id,
                    start=token,
                    end=stop,
                    direction=self._nio.MessageDirection.back,
                    limit=PAGE,
                ),
                f"the history of {room_id}",
            )
            events.extend(event.source for event in response.chunk)
            if not response.chunk or response.end in (None, token):
                break
            token = response.end
        events.reverse()
        return events

    async def event(self, room_id: str, event_id: str) -> dict[str, Any] | None:
        """One event by id (None when the homeserver no longer has it for us)."""
        try:
            response = await self._call(self._client.room_get_event(room_id, event_id), "")
        except SelftuneError:
            return None
        return dict(response.event.source)

    async def recent(self, room_id: str, limit: int) -> list[dict[str, Any]]:
        """The room's latest `limit` events, oldest first."""
        response = await self._call(
            self._client.room_messages(
                room_id, start=None, direction=self._nio.MessageDirection.back, limit=limit
            ),
            f"the latest events of {room_id}",
        )
        return [event.source for event in reversed(response.chunk)]

    async def state(self, room_id: str) -> list[dict[str, Any]]:
        """The room's current state events (members, name, bridge, encryption)."""
        response = await self._call(self._client.room_get_state(room_id), f"the state of {room_id}")
        return list(response.events)

    async def send_text(
        self, room_id: str, text: str, txn_id: str | None = None, extra: dict | None = None
    ) -> str:
        """Send `text` as the logged-in user; `txn_id` makes a retry the same message; `extra`
        adds content fields (clients and bridges ignore keys they do not know)."""
        return await self._send(
            room_id, {"msgtype": "m.text", "body": text, **(extra or {})}, txn_id
        )

    async def notice(self, room_id: str, text: str, txn_id: str | None = None) -> str:
        """A notice (`m.notice`: clients show it as a bot's, and bots do not answer it)."""
        return await self._send(room_id, {"msgtype": "m.notice", "body": text}, txn_id)

    async def _send(self, room_id: str, content: dict[str, Any], txn_id: str | None) -> str:
        response = await self._call(
            self._client.room_send(
                room_id, "m.room.message", content, tx_id=txn_id, ignore_unverified_devices=True
            ),
            f"a message to {room_id}",
        )
        return str(response.event_id)

    async def create_private_room(self, name: str, topic: str) -> str:
        """A new room with the logged-in user alone in it (the approvals room)."""
        response = await self._call(
            self._client.room_create(name=name, topic=topic, invite=[]),
            "creating a room",
        )
        return str(response.room_id)


async def login(homeserver: str, user_id: str, password: str, device_name: str) -> Account:
    """Log in with a password; the homeserver gives a new access token for a new device."""
    nio = _nio()
    client = nio.AsyncClient(
        homeserver,
        user_id,
        config=nio.AsyncClientConfig(
            encryption_enabled=False, store_sync_tokens=False, max_timeouts=MAX_RETRIES
        ),
    )
    try:
        response = await client.login(password=password, device_name=device_name)
    except Exception as exc:  # aiohttp: connection refused, bad URL
        raise SelftuneError(f"could not reach the homeserver {homeserver}: {exc}") from exc
    finally:
        await client.close()
    if isinstance(response, nio.responses.ErrorResponse):
        raise SelftuneError(
            f"{homeserver} refused the login of {user_id}: {response.status_code} "
            f"{response.message}"
        )
    return Account(homeserver, response.user_id, response.access_token, response.device_id)


async def check_token(homeserver: str, user_id: str, token: str) -> Account:
    """An account from a token the owner gives (`--token`), checked with /whoami."""
    account = Account(homeserver, user_id, token, None)
    try:
        async with MatrixClient(account) as client:
            found = await client.whoami()
    except SelftuneError:
        raise
    except Exception as exc:
        raise SelftuneError(f"could not reach the homeserver {homeserver}: {exc}") from exc
    if found != user_id:
        raise SelftuneError(f"the token belongs to {found}, not {user_id}; check --user")
    return account
