"""Using the twin: `TwinSession.open(ws, ...)` for a command, `TwinSession.for_workspace(ws)` for
the server (which runs engines through its scheduler), `TwinSession.bare(engine)` for measuring
the model as it is. `guard_for(ws)` is the workspace's output guard, `load_ranker` its ranker."""

from selftune.scoring.ranker import Ranker, load_ranker
from selftune.use.conversation import parse_conversation
from selftune.use.session import Candidates, TwinSession, guard_for, open_twin_engine

__all__ = [
    "Candidates",
    "Ranker",
    "TwinSession",
    "guard_for",
    "load_ranker",
    "open_twin_engine",
    "parse_conversation",
]
