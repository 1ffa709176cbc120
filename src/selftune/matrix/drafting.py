"""The one call that writes the bot's drafts: a room's latest turns, who will read the reply (the
audience) and the platform in, N guarded candidates (best first) and the logged sample's id out.

It goes through the use stage (`TwinSession.reply`: the twin's prompt with the room's platform,
the memory block, the output guard, the ranker, the sample log), like every other use of the
twin; the audience is where the boundaries rule (memory only from conversations everyone reading
took part in) plugs in.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from selftune.workspace import Workspace

ENDPOINT = "matrix-bot"


@dataclass
class Conversation:
    """What one set of drafts answers."""

    turns: list[tuple[str, str]]  # (author, text), oldest first; the owner under a `me` name
    audience: list[str]  # everyone but the owner who will read the reply (display names)
    platform: str  # the messages' source: "whatsapp", "telegram", "signal", "matrix"
    title: str  # the room's name


@dataclass
class Drafts:
    candidates: list[str]  # guarded, best first
    sample_id: int | None  # the sample log's row: picks and rejections are written to it


class Drafter:
    """The twin's session (`selftune.use.TwinSession`), opened once, drafting many times.
    `engine` given: that engine (a test's, a benchmark's); else run `run` (the latest) or the
    base on the engine kind `engine_kind`."""

    def __init__(
        self,
        ws: Workspace,
        engine: Any = None,
        run: str | None = None,
        engine_kind: str | None = None,
        base_only: bool = False,
    ):
        from selftune.use import TwinSession

        self.session = TwinSession.open(
            ws, run, engine if engine is not None else engine_kind, base_only
        )
        self.twin = self.session.twin

    @property
    def engine(self) -> Any:
        return self.session.engine

    def draft(self, conversation: Conversation, n: int) -> Drafts:
        """N drafts (guarded, ranked, logged as one sample) of the owner's reply. The audience
        is where the boundaries rule of the memory plugs in; until it does, the memory block is
        the one `TwinSession.reply` makes for the turns' authors."""
        candidates = self.session.reply(
            conversation.turns,
            conversation.platform,
            conversation.title,
            n=n,
            endpoint=ENDPOINT,
        )
        return Drafts(candidates.texts, candidates.sample_id)
