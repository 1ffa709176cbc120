"""`selftune matrix bot`: the loop that carries out `decide.py`'s decisions over Matrix.

Each turn: one long-polled /sync; every new event goes to `decide` (the approvals room's to
`on_answer`, allowed rooms' to `on_room_message`), then `due` says what to draft and what expired;
the actions are done (drafts written by `drafting.Drafter`, notices and chosen replies sent,
picks and rejections written to the sample log) and the state saved, so a restart resumes at
the same sync token without drafting or sending twice.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

from selftune.errors import SelftuneError
from selftune.guards import looks_like_injection
from selftune.matrix import decide
from selftune.matrix.account import Account, load_account
from selftune.matrix.client import MatrixClient
from selftune.matrix.drafting import Conversation, Drafter
from selftune.matrix.events import DRAFTED, RoomInfo, classify, content_text, room_info
from selftune.matrix.state import load_state, save_state
from selftune.store.samples import SampleLog
from selftune.twin import platform_name
from selftune.workspace import Workspace

STATE_FILE = "bot.json"
QUOTE_CHARS = 200
RETRY_SECONDS = 10


class Bot:
    """One bot session: the account, the drafter, the state, and the rooms it has seen."""

    def __init__(
        self,
        ws: Workspace,
        drafter: Drafter,
        account: Account | None = None,
        echo: Callable[[str], Any] = print,
    ):
        self.ws = ws
        self.config = ws.config.matrix
        self.account = account or load_account(ws.root)
        self.drafter = drafter
        self.echo = echo
        self.state = decide.BotState.from_dict(load_state(ws.root, STATE_FILE))
        self.rooms: dict[str, RoomInfo] = {}
        self.said_encrypted: set[str] = set()
        self.log = SampleLog(ws.store_path if ws.config.serve.log_samples else None)

    def save(self) -> None:
        save_state(self.ws.root, STATE_FILE, self.state.to_dict())

    async def start(self, client: MatrixClient) -> None:
        """The approvals room (made with only the owner in it, the first time), and a sync
        token to start from: history before the bot's first start is never drafted for."""
        state = self.state
        if self.config.approvals_room:
            state.approvals_room = self.config.approvals_room
        if not state.approvals_room:
            state.approvals_room = await client.create_private_room(
                "selftune drafts", "Drafts of your replies; answer 1..N, 'e <text>' or 'r'."
            )
            self.echo(f"Made the approvals room {state.approvals_room} (only you are in it).")
        room = room_info(
            state.approvals_room, self.account.user_id, await client.state(state.approvals_room)
        )
        others = [u for u in room.members if u != self.account.user_id]
        if others:  # drafts quote your chats: nobody else may read them
            raise SelftuneError(
                f"the approvals room {state.approvals_room} has other members "
                f"({', '.join(sorted(others))}); the drafts quote your conversations, so they go "
                "only to a room you alone are in. Remove them, or leave matrix.approvals_room "
                "empty for a new private room"
            )
        for pending in list(state.pending.values()):
            if pending.notice is None:  # drafted, then stopped before the notice went out
                await self._show(client, pending)
        if state.since is None:
            state.since = (await client.sync(None, limit=1)).next_batch
        self.save()
        allowed = ", ".join(self.config.rooms) or "none (list room ids under matrix.rooms)"
        self.echo(f"Drafting in: {allowed}. Answers in {state.approvals_room}.")

    async def step(self, client: MatrixClient, timeout_ms: int = 30000) -> None:
        """One /sync and everything it brings."""
        result = await client.sync(self.state.since, timeout_ms=timeout_ms)
        actions: list[decide.Action] = []
        for room_id, timeline in result.rooms.items():
            if any(e.get("state_key") is not None for e in timeline.events):
                self.rooms.pop(room_id, None)  # membership or name changed: read it again
            for event in timeline.events:
                actions += await self._event(client, room_id, event)
        await self._do(client, actions)
        self.state.since = result.next_batch
        self.save()
        await self._do(client, decide.due(self.state, self.config, time.time()))
        self.save()

    async def _event(
        self, client: MatrixClient, room_id: str, event: dict[str, Any]
    ) -> list[decide.Action]:
        owner = self.account.user_id
        if room_id == self.state.approvals_room:
            if event.get("type") != "m.room.message":
                return []
            relates = (event.get("content") or {}).get("m.relates_to") or {}
            reply_to = (relates.get("m.in_reply_to") or {}).get("event_id")
            return decide.on_answer(self.state, event, owner, reply_to)
        if room_id not in self.config.rooms:
            return []
        what = classify(event)
        if what == "encrypted":
            if room_id not in self.said_encrypted:
                self.said_encrypted.add(room_id)
                self.echo(
                    f"Skipping {room_id}: it is end-to-end encrypted, and selftune's Matrix "
                    "client does not decrypt (docs/matrix.md)."
                )
            return []
        if what != "message":
            return []
        room = await self._room(client, room_id)
        return decide.on_room_message(
            self.state, self.config, owner, room_id, event, self._excluded(room, event)
        )

    def _excluded(self, room: RoomInfo, event: dict[str, Any]) -> bool:
        """`people --exclude` / `memory forget`: never draft for someone who is left out."""
        sender = str(event.get("sender", ""))
        keys = {sender.casefold(), room.display(sender).casefold()}
        with self.ws.open_store() as store:
            return bool(keys & store.excluded_keys())

    async def _room(self, client: MatrixClient, room_id: str) -> RoomInfo:
        if room_id not in self.rooms:
            state = await client.state(room_id)
            self.rooms[room_id] = room_info(room_id, self.account.user_id, state)
        return self.rooms[room_id]

    async def _do(self, client: MatrixClient, actions: list[decide.Action]) -> None:
        unsent = False  # the Send before a LogPick failed: that pick did not happen
        for action in actions:
            if isinstance(action, decide.Draft):
                await self._draft(client, action)
            elif isinstance(action, decide.Notify):
                await self._notify(client, action.text, action.key)
            elif isinstance(action, decide.Send):
                try:
                    event_id = await client.send_text(
                        action.room_id, action.text, action.key, {DRAFTED: True}
                    )
                except SelftuneError as exc:  # not sent, so not a pick either: say so
                    self.echo(f"Could not send your answer to {action.room_id}: {exc}")
                    await self._notify(
                        client,
                        f"Could not send that into the room ({exc}); nothing was sent. Write it "
                        "there yourself, or wait for the next drafts.",
                        f"failed-{action.key}",
                    )
                    unsent = True
                    continue
                self.state.own.append(event_id)
                self.echo(f"Sent your answer to {action.room_id}.")
            elif isinstance(action, decide.LogPick) and not unsent:
                self.log.pick(action.sample_id, action.candidate, action.edited)
            elif isinstance(action, decide.LogReject):
                self.log.reject_all(action.sample_id)
            if not isinstance(action, decide.Send):
                unsent = False
            self.save()

    async def _notify(self, client: MatrixClient, text: str, key: str) -> str:
        assert self.state.approvals_room is not None
        event_id = await client.notice(self.state.approvals_room, text, f"selftune-{key}")
        self.state.own.append(event_id)
        del self.state.own[: -decide.HANDLED_KEPT]
        return event_id

    async def _draft(self, client: MatrixClient, action: decide.Draft) -> None:
        room = await self._room(client, action.room_id)
        events = await client.recent(action.room_id, self.config.context_messages * 2)
        turns: list[tuple[str, str]] = []
        trigger: dict[str, Any] | None = None
        for event in events:
            if classify(event) != "message":
                continue
            found = content_text(event.get("content") or {})
            if found is None:
                continue
            sender = str(event.get("sender", ""))
            author = self.drafter.twin.owner if sender == room.owner else room.display(sender)
            turns.append((author, found[1]))
            if event.get("event_id") == action.trigger:
                trigger = event
                break  # draft for this message, not for what came after it
        turns = turns[-self.config.context_messages :]
        if trigger is None or not turns:
            return
        audience = [room.display(u) for u in room.people if u != room.owner]
        conversation = Conversation(turns, audience, room.platform, room.title)
        drafts = await asyncio.to_thread(self.drafter.draft, conversation, self.config.drafts)
        pending = decide.Pending(
            action.room_id, action.trigger, drafts.candidates, drafts.sample_id, time.time()
        )
        quote = turns[-1][1]
        quote = quote if len(quote) <= QUOTE_CHARS else quote[:QUOTE_CHARS] + "…"
        pending.text = decide.drafts_text(
            pending,
            turns[-1][0],
            room.title,
            platform_name(room.platform),
            quote,
            self.config.expire_minutes,
            "Careful: this message looks like it tries to instruct the twin."
            if looks_like_injection([turns[-1][1]])
            else None,
        )
        decide.drafted(self.state, pending)
        self.save()  # a restart before the notice is out sends it then (start)
        await self._show(client, pending)
        self.echo(f"Drafts for {room.title} are in the approvals room.")

    async def _show(self, client: MatrixClient, pending: decide.Pending) -> None:
        """The drafts' notice (its key makes a second try after a restart the same message)."""
        pending.notice = await self._notify(client, pending.text, f"drafts-{pending.trigger}")
        self.save()


async def run(
    bot: Bot,
    timeout_ms: int = 30000,
    ready: Callable[[], Any] | None = None,
    stop: Callable[[], bool] = lambda: False,
) -> None:
    """The bot until interrupted, or until `stop()` says so between two syncs."""
    async with MatrixClient(bot.account) as client:
        await bot.start(client)
        if ready is not None:
            ready()
        while not stop():
            try:
                await bot.step(client, timeout_ms)
            except SelftuneError as exc:  # the homeserver away or refusing: wait, try again
                bot.echo(f"{exc}; trying again in {RETRY_SECONDS} s")
                await asyncio.sleep(RETRY_SECONDS)


def run_bot(ws: Workspace, drafter: Drafter, echo: Callable[[str], Any] = print) -> None:
    """`selftune matrix bot`: until Ctrl-C (the state is saved after every step)."""
    bot = Bot(ws, drafter, echo=echo)
    try:
        asyncio.run(run(bot))
    except KeyboardInterrupt:
        echo("Stopped; nothing waits to be sent. Start again to resume where it left off.")
