"""The one call that writes the bot's drafts: a room's latest turns, who will read the reply (the
audience) and the platform in, N guarded candidates (best first) and the logged sample's id out.

Written against the twin's own pieces (the prompt of `twin.py`, the memory block, the output
guard, the preference ranker, the sample log) until the `use` stage holds them in one place; the
audience is where the boundaries rule (memory only from conversations everyone reading took
part in) plugs in.
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
    """Opens the twin once (`engine` given: that engine, e.g. a test's), drafts many times."""

    def __init__(
        self,
        ws: Workspace,
        engine: Any = None,
        run: str | None = None,
        engine_kind: str = "auto",
        base_only: bool = False,
    ):
        from selftune.guards import OutputGuard
        from selftune.improve.ranker import load_ranker
        from selftune.memory import Memory
        from selftune.memory.facts import private_facts
        from selftune.store.samples import SampleLog
        from selftune.twin import Twin

        self.ws = ws
        self.engine = engine if engine is not None else _open(ws, run, engine_kind, base_only)
        self.twin = Twin.from_config(ws.config)
        self.guard = OutputGuard(private_facts(ws), enabled=ws.config.serve.guard_output)
        self.ranker = load_ranker(ws.root)
        self.memory = Memory.from_workspace(ws) if ws.config.memory.enabled else None
        self.log = SampleLog(ws.store_path if ws.config.serve.log_samples else None)

    def draft(self, conversation: Conversation, n: int) -> Drafts:
        from selftune.engines import GenRequest, render_chat
        from selftune.memory import token_counter

        turns = conversation.turns
        block = None
        if self.memory is not None:
            block = self.memory.for_turns(
                turns,
                conversation.platform,
                conversation.title,
                count_tokens=token_counter(self.engine.tokenizer),
            )
        messages = self.twin.reply_messages(
            turns, conversation.platform, conversation.title, memory=block
        )
        settings = self.ws.config.sample
        request = GenRequest(
            render_chat(self.engine.tokenizer, messages),
            n,
            settings.temperature,
            settings.top_p,
            settings.max_tokens,
        )
        texts = self.engine.generate([request])[0].texts
        drafts = [self.guard(t, turns[-1][1]).strip() for t in texts]
        drafts = [d for d in drafts if d] or ["…"]
        if self.ranker is not None:
            drafts = self.ranker.order(drafts)
        sample_id = self.log.add(
            ENDPOINT,
            getattr(self.engine, "model_id", "twin"),
            {"messages": messages},
            {"n": n, "platform": conversation.platform, "audience": conversation.audience},
            drafts,
        )
        return Drafts(drafts, sample_id)


def _open(ws: Workspace, run: str | None, kind: str, base_only: bool) -> Any:
    from selftune.engines import ModelSpec, open_engine

    if base_only:
        spec = ModelSpec("base", ws.config.train.base)
    else:
        found = ws.artefacts.run(run)
        spec = ModelSpec(found.id, found.base, found.path)
    return open_engine(spec, kind, serve=ws.config.serve)
