"""What a running server holds: the model catalog, one engine and scheduler per loaded model, the
settings, and the twin's session (`selftune.use.TwinSession`: the twin's prompt, memory block,
output guard, ranker and sample log). `selftune serve` builds it with `from_session`."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from selftune.config import BuildConfig, ServeConfig
from selftune.engines import EngineChoice, ModelSpec, choose_engine, open_engine
from selftune.errors import SelftuneError
from selftune.guards import OutputGuard, output_guard
from selftune.server.scheduler import Scheduler
from selftune.store.samples import SampleLog
from selftune.twin import Twin
from selftune.use import TwinSession


class UnknownModel(SelftuneError):
    pass


class ServerState:
    """Built from a workspace's session (`from_session`), or from its parts (tests): `build`
    gives the prompt settings and private facts, `me` the owner's names."""

    def __init__(
        self,
        catalog: dict[str, ModelSpec],
        serve: ServeConfig | None = None,
        build: BuildConfig | None = None,
        me: Iterable[str] = (),
        log: SampleLog | None = None,
        reports_dir: Path | None = None,
        memory: Any = None,
        engines: dict[str, Any] | None = None,
        engine_factory: Callable[[ModelSpec, str], Any] | None = None,
        ranker: Any = None,
        echo: Callable[[str], Any] | None = None,
        session: TwinSession | None = None,
    ):
        self.catalog = catalog
        self.serve = serve or ServeConfig()
        self.reports_dir = reports_dir
        self.engines: dict[str, Any] = engines if engines is not None else {}
        self.engine_factory = engine_factory
        self.echo = echo  # where loading says what it does (serve: stderr)
        self.schedulers: dict[str, Scheduler] = {}
        self._lock = threading.Lock()
        if session is None:
            build = build or BuildConfig()
            session = TwinSession(
                twin=Twin(tuple(me), build.system_prompt, build.prompt_date),
                guard=output_guard(build.private_facts, self.serve),
                log=log or SampleLog(None),
                memory=memory,
                ranker=ranker,
            )
        self.session = session

    @classmethod
    def from_session(
        cls,
        session: TwinSession,
        catalog: dict[str, ModelSpec],
        serve: ServeConfig,
        reports_dir: Path | None = None,
        echo: Callable[[str], Any] | None = None,
    ) -> ServerState:
        return cls(catalog, serve, reports_dir=reports_dir, echo=echo, session=session)

    # what the session holds, by the names the routes use
    @property
    def twin(self) -> Twin:
        return self.session.twin

    @property
    def guard(self) -> OutputGuard:
        return self.session.guard

    @property
    def log(self) -> SampleLog:
        return self.session.log

    @log.setter
    def log(self, log: SampleLog) -> None:
        self.session.log = log

    @property
    def memory(self) -> Any:
        return self.session.memory

    @property
    def ranker(self) -> Any:
        return self.session.ranker

    @ranker.setter
    def ranker(self, ranker: Any) -> None:
        self.session.ranker = ranker

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
