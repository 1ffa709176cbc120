"""Scheduler.close() answers every request still waiting or running (they used to hang), and a
request after close is answered at once."""

from __future__ import annotations

import threading
import time

import pytest

from selftune.engines.base import GenRequest, GenResult
from selftune.server.scheduler import Scheduler


class Stuck:
    """A batched engine whose generate call blocks until released (or 10 s pass)."""

    name, model_id = "stuck", "twin"
    tokenizer = None

    def __init__(self) -> None:
        self.started = threading.Event()
        self.release = threading.Event()

    def generate(self, requests):  # type: ignore[no-untyped-def]
        self.started.set()
        self.release.wait(10)
        return [GenResult(["late"] * r.n, 1, [1] * r.n, ["stop"] * r.n) for r in requests]


def test_close_answers_the_running_and_the_waiting():
    engine = Stuck()
    scheduler = Scheduler(engine, max_batch=1, queue_size=8, wait_ms=0)
    assert scheduler.mode == "batched"
    running = scheduler.submit(GenRequest("a", 1, 0.8, 0.95, 4))
    assert engine.started.wait(5)
    waiting = [scheduler.submit(GenRequest(p, 1, 0.8, 0.95, 4)) for p in "bcd"]
    started = time.monotonic()
    scheduler.close()
    for job in [running, *waiting]:
        with pytest.raises(RuntimeError, match="shutting down"):
            job.future.result(timeout=1)
    assert time.monotonic() - started < 8  # the join's 5 s at most, not forever
    after = scheduler.submit(GenRequest("e", 1, 0.8, 0.95, 4))
    with pytest.raises(RuntimeError, match="shutting down"):
        after.future.result(timeout=1)
    engine.release.set()
