"""The bot's decisions, without any I/O: what to do when a contact writes in a room, when the
owner answers in the approvals room, and when time passes. Each returns actions for the loop
(`bot.py`) to carry out; the state it changes is saved by the loop after each step, so a
restart resumes without drafting or sending twice (everything is keyed by event id).

The rules: drafts only for rooms in `matrix.rooms`, and only for others' messages; nothing is
ever sent into a room without the owner's answer (`1..N`, `e <text>`, `r`); a newer message
supersedes the room's older drafts, and so does the owner writing there themselves; drafts expire
after `matrix.expire_minutes`; a room is drafted for at most every `min_seconds_between_drafts`
and all rooms at most `max_drafts_per_hour` times an hour.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field
from typing import Any

from selftune.config import MatrixConfig

ANSWER = re.compile(
    r"^\s*(?:(?P<pick>\d+)|(?P<edit>e)\s+(?P<text>\S.*)|(?P<reject>r))\s*$", re.I | re.S
)
HANDLED_KEPT = 2000  # event ids remembered for idempotency


@dataclass
class Pending:
    """A set of drafts waiting for the owner's answer."""

    room_id: str
    trigger: str  # the event id of the message the drafts answer
    candidates: list[str]
    sample_id: int | None
    created: float
    notice: str | None = None  # the event id of the drafts' message in the approvals room
    text: str = ""  # that message


@dataclass
class BotState:
    since: str | None = None
    approvals_room: str | None = None
    pending: dict[str, Pending] = field(default_factory=dict)  # room id -> drafts
    waiting: dict[str, str] = field(default_factory=dict)  # room id -> event id to draft for
    handled: list[str] = field(default_factory=list)  # event ids acted on, newest last
    own: list[str] = field(default_factory=list)  # event ids the bot sent (not the owner typing)
    last_draft: dict[str, float] = field(default_factory=dict)  # room id -> time
    drafted_at: list[float] = field(default_factory=list)  # times of draft sets, the last hour

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> BotState:
        known = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        state = cls(**known)
        state.pending = {k: Pending(**v) for k, v in state.pending.items()}
        return state

    def was_handled(self, event_id: str) -> bool:
        return event_id in self.handled

    def mark(self, event_id: str) -> None:
        if event_id not in self.handled:
            self.handled.append(event_id)
            del self.handled[:-HANDLED_KEPT]


# -- actions the loop carries out ------------------------------------------------------------


@dataclass
class Draft:
    room_id: str
    trigger: str


@dataclass
class Notify:
    """A notice to the owner in the approvals room (`key` makes a retry the same message)."""

    text: str
    key: str


@dataclass
class Send:
    """The owner's chosen text, sent into the room as the owner, after their answer."""

    room_id: str
    text: str
    key: str  # transaction id: a restart that sends again sends the same message


@dataclass
class LogPick:
    sample_id: int
    candidate: int
    edited: str | None = None


@dataclass
class LogReject:
    sample_id: int


Action = Draft | Notify | Send | LogPick | LogReject


def on_room_message(
    state: BotState,
    config: MatrixConfig,
    owner: str,
    room_id: str,
    event: dict[str, Any],
    excluded: bool = False,
) -> list[Action]:
    """A message in a room other than the approvals room."""
    event_id = str(event.get("event_id", ""))
    if room_id not in config.rooms or state.was_handled(event_id):
        return []
    state.mark(event_id)
    if event_id in state.own:
        return []
    actions: list[Action] = []
    if event.get("sender") == owner:  # the owner answered there themselves
        old = state.pending.pop(room_id, None)
        state.waiting.pop(room_id, None)
        if old is not None:
            actions.append(
                Notify(
                    "The drafts above are dropped: you wrote in that room yourself.",
                    f"own-{event_id}",
                )
            )
        return actions
    if excluded:
        return []
    old = state.pending.pop(room_id, None)
    if old is not None:
        actions.append(
            Notify("A newer message came in; the drafts above are replaced.", f"super-{event_id}")
        )
    state.waiting[room_id] = event_id
    return actions


def due(state: BotState, config: MatrixConfig, now: float) -> list[Action]:
    """Draft for waiting rooms whose rate limits allow it; expire old drafts."""
    actions: list[Action] = []
    for room_id, pending in list(state.pending.items()):
        if now - pending.created > config.expire_minutes * 60:
            del state.pending[room_id]
            actions.append(
                Notify(
                    f"Drafts expired after {config.expire_minutes:g} min; nothing was sent.",
                    f"expired-{pending.trigger}",
                )
            )
    state.drafted_at = [t for t in state.drafted_at if now - t < 3600]
    for room_id, trigger in list(state.waiting.items()):
        if now - state.last_draft.get(room_id, 0) < config.min_seconds_between_drafts:
            continue
        if len(state.drafted_at) >= config.max_drafts_per_hour:
            break
        del state.waiting[room_id]
        state.last_draft[room_id] = now
        state.drafted_at.append(now)
        actions.append(Draft(room_id, trigger))
    return actions


def drafted(state: BotState, pending: Pending) -> None:
    state.pending[pending.room_id] = pending


def drafts_text(
    pending: Pending,
    author: str,
    title: str,
    platform: str,
    quote: str,
    minutes: float,
    warning: str | None = None,
) -> str:
    """The approvals room's message for one set of drafts."""
    where = f"{title} ({platform})" if platform.lower() != "matrix" else title
    lines = [f"{author} in {where}: {quote}"]
    if warning:
        lines.append(warning)
    lines += [f"{i}. {text}" for i, text in enumerate(pending.candidates, start=1)]
    n = len(pending.candidates)
    lines.append(
        f"Answer {'1' if n == 1 else f'1-{n}'} to send that draft, 'e <text>' to send your own "
        f"words, 'r' to reject them all. Nothing is sent without your answer; these expire in "
        f"{minutes:g} min."
    )
    return "\n".join(lines)


def on_answer(
    state: BotState, event: dict[str, Any], owner: str, reply_to: str | None = None
) -> list[Action]:
    """The owner's message in the approvals room: answers the drafts it replies to (a Matrix
    reply), else the newest drafts waiting."""
    event_id = str(event.get("event_id", ""))
    content = event.get("content") or {}
    if (
        event.get("sender") != owner
        or event_id in state.own
        or state.was_handled(event_id)
        or content.get("msgtype") == "m.notice"
    ):
        return []
    state.mark(event_id)
    body = str(content.get("body", ""))
    if body.startswith("> "):  # a reply's quoted fallback
        body = body.split("\n\n", 1)[-1]
    match = ANSWER.match(body)
    if not state.pending:
        return [Notify("No drafts are waiting.", f"none-{event_id}")] if match else []
    target = next((p for p in state.pending.values() if reply_to and p.notice == reply_to), None)
    target = target or max(state.pending.values(), key=lambda p: p.created)
    if match is None:
        return [
            Notify(f"Answer 1-{len(target.candidates)}, 'e <text>' or 'r'.", f"help-{event_id}")
        ]
    actions: list[Action] = []
    if match["reject"]:
        del state.pending[target.room_id]
        if target.sample_id is not None:
            actions.append(LogReject(target.sample_id))
        actions.append(Notify("Rejected; nothing was sent.", f"rejected-{event_id}"))
        return actions
    if match["edit"]:
        text, index, edited = match["text"].strip(), 0, match["text"].strip()
    else:
        index = int(match["pick"]) - 1
        if not 0 <= index < len(target.candidates):
            return [
                Notify(
                    f"There is no draft {match['pick']}; answer 1-{len(target.candidates)}.",
                    f"range-{event_id}",
                )
            ]
        text, edited = target.candidates[index], None
        if not text.strip():
            return [Notify(f"Draft {index + 1} is empty; choose another.", f"empty-{event_id}")]
    del state.pending[target.room_id]
    actions.append(Send(target.room_id, text, f"selftune-{target.trigger}"))
    if target.sample_id is not None:
        actions.append(LogPick(target.sample_id, index, edited))
    return actions
