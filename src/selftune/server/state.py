"""What a running server holds: the model catalog, one engine and scheduler per loaded model, the
sample log, the output guard and the settings. Built once by `create_app`."""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from selftune.config import BuildConfig, ServeConfig
from selftune.engines import EngineChoice, ModelSpec, choose_engine, open_engine
from selftune.errors import SelftuneError
from selftune.guards import OutputGuard
from selftune.server.scheduler import Scheduler
from selftune.store.samples import SampleLog
from selftune.twin import Twin


class UnknownModel(SelftuneError):
    pass


@dataclass
class ServerState:
    catalog: dict[str, ModelSpec]
    serve: ServeConfig = field(default_factory=ServeConfig)
    build: BuildConfig = field(default_factory=BuildConfig)
    me: list[str] = field(default_factory=list)
    log: SampleLog = field(default_factory=lambda: SampleLog(None))
    reports_dir: Path | None = None
    memory: Any = None  # selftune.memory.Memory: the twin's memory block, None when off
    engines: dict[str, Any] = field(default_factory=dict)
    engine_factory: Callable[[ModelSpec, str], Any] | None = None
    ranker: Any = None  # the preference ranker (`selftune rank --train`), when there is one
    echo: Callable[[str], Any] | None = None  # where loading says what it does (serve: stderr)
    schedulers: dict[str, Scheduler] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def __post_init__(self) -> None:
        facts = getattr(self.build, "private_facts", None) or []
        self.guard = OutputGuard(facts, enabled=self.serve.guard_output)

    @property
    def twin(self) -> Twin:
        return Twin(tuple(self.me), self.build.system_prompt, self.build.prompt_date)

    @property
    def owner(self) -> str:
        return self.twin.owner

    def model_names(self) -> list[str]:
        names = list(self.catalog)
        return names + [n for n in self.engines if n not in self.catalog]

    def scheduler(self, model: str) -> Scheduler:
        """The scheduler of `model`, loading the model on first use."""
        with self._lock:
            if model in self.schedulers:
                return self.schedulers[model]
            engine = self.engines.get(model)
            if engine is None:
                spec = self.catalog.get(model)
                if spec is None:
                    raise UnknownModel(
                        f"the model '{model}' does not exist; GET /v1/models lists "
                        f"{', '.join(self.model_names())}"
                    )
                factory = self.engine_factory or self._open
                engine = factory(spec, self.serve.engine)
                self.engines[model] = engine
            s = self.serve
            self.schedulers[model] = Scheduler(
                engine, s.max_batch, s.queue_size, s.batch_wait_ms, s.timeout_s
            )
            return self.schedulers[model]

    batcher = scheduler  # the name callers used before the scheduler

    def _open(self, spec: ModelSpec, kind: str) -> Any:
        return open_engine(spec, kind, serve=self.serve, echo=self.echo)

    def engine_choice(self, model: str) -> EngineChoice | None:
        """How `model` is served (loaded) or would be (not loaded yet)."""
        engine = self.engines.get(model)
        if engine is not None:
            return getattr(engine, "choice", None) or EngineChoice(engine.name, "given")
        spec = self.catalog.get(model)
        if spec is None:
            return None
        try:
            return choose_engine(spec, self.serve.engine)
        except SelftuneError as exc:
            return EngineChoice("none", str(exc))

    def tokenizer(self, model: str) -> Any:
        return self.scheduler(model).engine.tokenizer

    def count_tokens(self, model: str) -> Callable[[str], int]:
        tokenizer = self.tokenizer(model)
        return lambda text: len(tokenizer.encode(text, add_special_tokens=False))

    def close(self) -> None:
        for scheduler in self.schedulers.values():
            scheduler.close()
