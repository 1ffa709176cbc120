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

from selftune.engines.base import GenRequest, GenResult

log = logging.getLogger("selftune.server")


class QueueFull(Exception):
    """Too many requests are waiting; the client should retry later."""


@dataclass
class Job:
    request: GenRequest
    deadline: float
    future: Future = field(default_factory=Future)
    cancel_event: threading.Event = field(default_factory=threading.Event)
    original_on_text: Any = None

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
        streamed = _watch_streams(batch) if len(batch) > 1 else set()
        try:
            results: list[GenResult] = self.engine.generate([j.request for j in batch])
        except Exception as exc:  # the worker must survive anything one batch does
            log.error("generation failed for %d request(s): %s", len(batch), type(exc).__name__)
            for i, job in enumerate(batch):
                if len(batch) > 1 and i not in streamed:
                    self._execute([job])  # alone: only the request that fails, fails
                elif not job.future.done():
                    job.future.set_exception(exc)
            return
        finally:
            _unwatch_streams(batch)
        for job, result in zip(batch, results, strict=True):
            if not job.future.done():
                job.future.set_result(result)


def _watch_streams(batch: list[Job]) -> set[int]:
    """Indices of the jobs whose text has started streaming (those cannot be run again)."""
    streamed: set[int] = set()
    for i, job in enumerate(batch):
        callback = job.request.on_text
        if callback is not None:
            job.original_on_text = callback

            def on_text(k: int, text: str, i: int = i, callback=callback) -> None:  # type: ignore[no-untyped-def]
                streamed.add(i)
                callback(k, text)

            job.request.on_text = on_text
    return streamed


def _unwatch_streams(batch: list[Job]) -> None:
    for job in batch:
        if job.original_on_text is not None:
            job.request.on_text = job.original_on_text
            job.original_on_text = None
