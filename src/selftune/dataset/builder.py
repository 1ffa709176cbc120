"""`run_build`: the build stage's one entry point (the CLI, the demo, benchmarks and tests call it)."""

from __future__ import annotations

from collections.abc import Callable
from functools import lru_cache
from typing import Any

from selftune.twin import Twin
from selftune.workspace import Workspace


@lru_cache(maxsize=2)
def _tokenizer(base: str) -> Any:
    """The base tokenizer, loaded once per process (tests and the demo build several times)."""
    from selftune.models import load_tokenizer

    return load_tokenizer(base)


def run_build(
    ws: Workspace,
    dry_run: bool = False,
    prepare: Callable[[Any], None] | None = None,
    canaries: int = 0,
) -> tuple[dict, str | None]:
    """Build a dataset from the store; returns (card, dataset id or None for a dry run).

    `prepare`, when given, is called with the `Dataset` before the card is made and the files
    are written: the place to add examples to `data.train`. `canaries` random secrets are
    planted in the training split that way (see selftune.dataset.canaries).
    """
    from selftune.dataset.examples import BatchTokenCounter, build_dataset
    from selftune.dataset.writer import card, serialise, start_at_user_turn, write_dataset
    from selftune.memory import build_memory
    from selftune.memory.facts import private_facts

    counter = BatchTokenCounter(_tokenizer(ws.config.train.base))
    # facts.yaml's private facts are scrubbed like build.private_facts
    settings = ws.config.build.model_copy(update={"private_facts": private_facts(ws)})
    with ws.open_store() as store:
        store.apply_identity(ws.config.me)
        memory = build_memory(ws, store, counter)
        owner = Twin.from_config(ws.config).owner
        data = build_dataset(store, settings, owner, counter, memory)
    if prepare is not None:
        prepare(data)
    planted = []
    if canaries:
        from selftune.dataset.canaries import plant_canaries

        planted = plant_canaries(data.train, canaries, seed=ws.config.train.seed)
    if ws.config.build.start_with_user:
        start_at_user_turn(data)
    files = serialise(data, _tokenizer(ws.config.train.base))
    info = card(data, settings, ws.config.train.base, files)
    info["memory"] = ws.config.memory.model_dump() | {
        "facts_yaml": memory is not None and bool(memory.facts.items)
    }
    if dry_run:
        return info, None
    staged = ws.artefacts.new_dataset()  # renamed into datasets/ once every file is written
    with staged as folder:
        info = write_dataset(data, folder, info, files)
        if planted:
            from selftune.dataset.canaries import write_canaries

            write_canaries(folder, planted)
    return info, staged.id
