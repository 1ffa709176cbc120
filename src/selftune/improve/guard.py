"""The output guard improve chooses its material with: every private fact (twin.yaml's and
facts.yaml's); always on for training, whatever `serve.guard_output` says for output."""

from __future__ import annotations

from selftune.guards import OutputGuard
from selftune.memory.facts import private_facts
from selftune.workspace import Workspace


def guard_of(ws: Workspace, training: bool = True) -> OutputGuard:
    """The guard with every private fact; for choosing training material it is always on."""
    return OutputGuard(private_facts(ws), enabled=training or ws.config.serve.guard_output)
