"""Dynamic batching: one worker thread per loaded model runs requests from many clients together.

Requests wait in a bounded queue (full → `QueueFull`, which the API turns into 429). The worker
takes the first waiting request, waits `wait_ms` for others to join, and hands the engine up to
`max_batch` candidates at once; the engine runs those with the same sampling settings in one
forward pass. A request past its deadline, or whose client went away, is cancelled mid-batch.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any

from selftune.engines.base import GenRequest
from selftune.server.isolation import generate_isolated

log = logging.getLogger("selftune.server")


class QueueFull(Exception):
    """Too many requests are waiting; the client should retry later."""


@dataclass
class Job:
    request: GenRequest
    deadline: float
    future: Future = field(default_factory=Future)
    cancel_event: threading.Event = field(default_factory=threading.Event)

    def cancel(self) -> None:
        self.cancel_event.set()

    def is_cancelled(self) -> bool:
        return self.cancel_event.is_set() or time.monotonic() > self.deadline


class Batcher:
    def __init__(
        self,
        engine: Any,
        max_batch: int = 16,
        queue_size: int = 64,
        wait_ms: float = 10,
        timeout_s: float = 120,
    ):
        self.engine = engine
        self.max_batch = max_batch
        self.wait_s = wait_ms / 1000
        self.timeout_s = timeout_s
        self.jobs: queue.Queue[Job] = queue.Queue(maxsize=queue_size)
        self.batches = 0  # how many engine calls ran (tests check that requests were batched)
        self.batch_sizes: list[int] = []
        self._pending: Job | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="selftune-batcher", daemon=True)
        self._thread.start()

    def submit(self, request: GenRequest, timeout_s: float | None = None) -> Job:
        job = Job(request, time.monotonic() + (timeout_s or self.timeout_s))
        request.cancelled = job.is_cancelled
        try:
            self.jobs.put_nowait(job)
        except queue.Full:
            raise QueueFull(f"{self.jobs.maxsize} requests are already waiting") from None
        return job

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def _run(self) -> None:
        while not self._stop.is_set():
            batch = self._collect()
            if batch:
                self._execute(batch)

    def _collect(self) -> list[Job]:
        first = self._pending
        self._pending = None
        if first is None:
            try:
                first = self.jobs.get(timeout=0.2)
            except queue.Empty:
                return []
        batch, size = [first], first.request.n
        until = time.monotonic() + self.wait_s
        while size < self.max_batch:
            try:
                job = self.jobs.get(timeout=max(0.0, until - time.monotonic()))
            except queue.Empty:
                break
            if size + job.request.n > self.max_batch:
                self._pending = job  # first in the next batch, so nobody is overtaken
                break
            batch.append(job)
            size += job.request.n
        return [j for j in batch if not self._drop_cancelled(j)]

    @staticmethod
    def _drop_cancelled(job: Job) -> bool:
        if job.is_cancelled() and not job.future.done():
            job.future.set_exception(TimeoutError("cancelled or timed out before it started"))
            return True
        return False

    def _execute(self, batch: list[Job]) -> None:
        self.batches += 1
        self.batch_sizes.append(sum(j.request.n for j in batch))
        outcomes = generate_isolated(self.engine, [j.request for j in batch])
        for job, outcome in zip(batch, outcomes, strict=True):
            if job.future.done():
                continue
            if isinstance(outcome, Exception):
                job.future.set_exception(outcome)
            else:
                job.future.set_result(outcome)
