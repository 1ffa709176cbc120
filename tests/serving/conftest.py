"""Serving fixtures: the tiny random model as an engine, and a real server on loopback."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def tiny_engine(tiny_model_dir: Path):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from selftune.engines.transformers_engine import TransformersEngine

    torch.set_num_threads(1)
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    model.eval()
    return TransformersEngine(model, AutoTokenizer.from_pretrained(tiny_model_dir), "twin")


@pytest.fixture(scope="session")
def llama_engine(tokenizer_dir: Path):
    """The llama.cpp engine on the embedded model's GGUF, with 6 sequence slots and no prefix
    cache (a cached prefix changes where cells sit in the KV cache, and with it the numbers;
    test_a_shared_prefix_is_copied_not_decoded_again covers the cache)."""
    pytest.importorskip("llama_cpp", reason="pip install 'selftune[llamacpp]'")
    from transformers import AutoTokenizer

    from selftune.engines.llamacpp_engine import LlamaCppEngine
    from selftune.models import embedded_gguf_path

    engine = LlamaCppEngine(
        embedded_gguf_path(),
        AutoTokenizer.from_pretrained(tokenizer_dir),
        "base",
        n_ctx=2048,
        slots=6,
        threads=1,
        prefix_cache=0,
    )
    yield engine
    engine.close()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class LiveServer:
    """uvicorn in a thread on 127.0.0.1, stopped at the end of the test."""

    def __init__(self, app):  # type: ignore[no-untyped-def]
        import uvicorn

        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        config = uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> LiveServer:
        self.thread.start()
        deadline = time.monotonic() + 20
        while not self.server.started:
            if time.monotonic() > deadline:
                raise RuntimeError("the test server did not start")
            time.sleep(0.05)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)


@pytest.fixture
def make_state(tiny_engine, tmp_path: Path):
    """A ServerState over the tiny engine, logging to a fresh store; settings overridable."""
    from selftune.config import BuildConfig, ServeConfig
    from selftune.engines import ModelSpec
    from selftune.server import ServerState
    from selftune.store import Store
    from selftune.store.samples import SampleLog

    store = tmp_path / "store.sqlite"
    Store(store).close()
    made = []

    def make(build: BuildConfig | None = None, **serve) -> ServerState:  # type: ignore[no-untyped-def]
        state = ServerState(
            catalog={"twin": ModelSpec("twin", "tiny")},
            serve=ServeConfig(**serve),
            build=build or BuildConfig(),
            me=["Mags"],
            log=SampleLog(store),
            reports_dir=tmp_path / "reports",
            engines={"twin": tiny_engine},
        )
        made.append(state)
        return state

    yield make
    for state in made:
        state.close()


@pytest.fixture
def live(make_state) -> Iterator[LiveServer]:
    from selftune.server import create_app

    with LiveServer(create_app(make_state())) as server:
        yield server


@pytest.fixture(params=["transformers", "llamacpp"])
def live_on_each_engine(request, make_state) -> Iterator[LiveServer]:  # type: ignore[no-untyped-def]
    """A loopback server on each engine in turn: transformers (the tiny model) and llama.cpp (the
    embedded model's GGUF, what `auto` serves; skipped without llama-cpp-python)."""
    from selftune.server import create_app

    state = make_state()
    if request.param == "llamacpp":
        state.engines["twin"] = request.getfixturevalue("llama_engine")
    with LiveServer(create_app(state)) as server:
        yield server
