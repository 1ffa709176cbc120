"""The scheduler: one worker per loaded model runs the requests of every client.

Requests wait in a bounded queue (full → `QueueFull`, which the API turns into 429). How they run
depends on what the engine can do:

- continuous (the llama.cpp engine): every step decodes one token of every running candidate;
  waiting requests join at the next step as soon as there are free slots, in arrival order, and a
  finished or cancelled request frees its slots at once;
- batched (transformers): the worker takes the first waiting request, waits `wait_ms` for others
  to join, and hands the engine up to `max_batch` candidates in one `generate` call;
- concurrent (an upstream OpenAI-compatible server, which batches on its side): up to
  `max_batch` requests are in flight at once.

A request past its deadline, or whose client went away, is cancelled where it stands.
"""

from __future__ import annotations

import collections
import contextlib
import logging
import threading
import time
from concurrent.futures import Future, InvalidStateError, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from selftune.engines.base import GenRequest
from selftune.server.isolation import generate_isolated

log = logging.getLogger("selftune.server")


SHUTTING_DOWN = "the server is shutting down"


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


def scheduling_mode(engine: Any) -> str:
    if getattr(engine, "continuous", False):
        return "continuous"
    return "concurrent" if getattr(engine, "concurrent", False) else "batched"


class Scheduler:
    def __init__(
        self,
        engine: Any,
        max_batch: int = 16,
        queue_size: int = 64,
        wait_ms: float = 10,
        timeout_s: float = 120,
    ):
        self.engine = engine
        self.mode = scheduling_mode(engine)
        self.max_batch = max_batch
        self.queue_size = queue_size
        self.wait_s = wait_ms / 1000
        self.timeout_s = timeout_s
        self.waiting: collections.deque[Job] = collections.deque()
        self.in_flight = 0  # concurrent mode: requests handed to the engine, not yet answered
        # how many engine calls (batches or steps) ran and how many candidates each had
        self.batches = 0
        self.batch_sizes: collections.deque[int] = collections.deque(maxlen=10_000)
        self._cond = threading.Condition()
        self._stop = threading.Event()
        self._open: list[Job] = []  # jobs not answered yet, so that close() can answer them
        self._pool = (
            ThreadPoolExecutor(max_batch, thread_name_prefix="selftune-upstream")
            if self.mode == "concurrent"
            else None
        )
        run = {"continuous": self._run_continuous, "batched": self._run_batched}
        self._thread = threading.Thread(
            target=run.get(self.mode, self._run_concurrent), name="selftune-scheduler", daemon=True
        )
        self._thread.start()

    def submit(self, request: GenRequest, timeout_s: float | None = None) -> Job:
        job = Job(request, time.monotonic() + (timeout_s or self.timeout_s))
        request.cancelled = job.is_cancelled
        with self._cond:
            if self._stop.is_set():  # closed: answered at once, never left waiting
                job.future.set_exception(RuntimeError(SHUTTING_DOWN))
                return job
            if len(self.waiting) >= self.queue_size:
                raise QueueFull(f"{self.queue_size} requests are already waiting")
            self.waiting.append(job)
            self._open = [j for j in self._open if not j.future.done()] + [job]
            self._cond.notify()
        return job

    def close(self) -> None:
        self._stop.set()
        with self._cond:
            self._cond.notify()
        self._thread.join(timeout=5)
        with self._cond:
            unanswered = {id(j.request): j for j in self._open if not j.future.done()}
            self.waiting.clear()
        if self.mode == "continuous" and self.engine.busy():
            self._fail_all(unanswered, RuntimeError(SHUTTING_DOWN))  # frees the sequences too
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
        for job in unanswered.values():  # every request still waiting or running is answered
            with contextlib.suppress(InvalidStateError):  # unless it finished meanwhile
                job.future.set_exception(RuntimeError(SHUTTING_DOWN))

    # -- continuous: join at the next step --------------------------------------------------

    def _run_continuous(self) -> None:
        engine = self.engine
        jobs: dict[int, Job] = {}
        while not self._stop.is_set():
            with self._cond:
                if not self.waiting and not engine.busy():
                    self._cond.wait(0.2)
                self._drop_cancelled_waiting()
                while self.waiting and engine.can_admit(self.waiting[0].request):
                    job = self.waiting.popleft()
                    try:
                        engine.admit(job.request)
                        jobs[id(job.request)] = job
                    except Exception as exc:  # a request the engine refuses fails alone
                        job.future.set_exception(exc)
            if not engine.busy():
                continue
            try:
                self.batch_sizes.append(engine.active_sequences())
                finished = engine.step()
                self.batches += 1
            except Exception as exc:  # the worker must survive anything one step does
                log.error(
                    "a decoding step failed (%s); failing %d requests",
                    type(exc).__name__,
                    len(jobs),
                )
                self._fail_all(jobs, exc)
                continue
            for request, result in finished:
                job = jobs.pop(id(request), None)
                if job is not None and not job.future.done():
                    job.future.set_result(result)

    def _fail_all(self, jobs: dict[int, Job], exc: Exception) -> None:
        engine = self.engine
        for request in [r.request for r in getattr(engine, "running", [])]:
            request.cancelled = lambda: True
        try:
            engine.step()  # frees every cancelled sequence
        except Exception as exc:
            log.error(
                "could not free the engine's sequences after a failed step (%s)", type(exc).__name__
            )
        for job in jobs.values():
            if not job.future.done():
                job.future.set_exception(exc)
        jobs.clear()

    # -- batched: one generate call per batch -----------------------------------------------

    def _run_batched(self) -> None:
        while not self._stop.is_set():
            batch = self._collect()
            if batch:
                self._run_batch(batch)

    def _collect(self) -> list[Job]:
        with self._cond:
            if not self.waiting:
                self._cond.wait(0.2)
            if not self.waiting:
                return []
            batch, size = [self.waiting.popleft()], 0
            size = batch[0].request.n
            until = time.monotonic() + self.wait_s
            while size < self.max_batch:
                if not self.waiting:
                    left = until - time.monotonic()
                    if left <= 0 or self._stop.is_set():
                        break
                    self._cond.wait(left)
                    continue
                if size + self.waiting[0].request.n > self.max_batch:
                    break  # it leads the next batch, so nobody is overtaken
                job = self.waiting.popleft()
                batch.append(job)
                size += job.request.n
        return [j for j in batch if not self._drop_cancelled(j)]

    def _run_batch(self, batch: list[Job]) -> None:
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

    # -- concurrent: the upstream batches -----------------------------------------------------

    def _run_concurrent(self) -> None:
        assert self._pool is not None
        while not self._stop.is_set():
            with self._cond:
                while not self._stop.is_set() and (
                    not self.waiting or self.in_flight >= self.max_batch
                ):
                    self._cond.wait(0.2)
                self._drop_cancelled_waiting()
                if self._stop.is_set() or not self.waiting:
                    continue
                job = self.waiting.popleft()
                self.in_flight += 1
            self.batches += 1
            self.batch_sizes.append(self.in_flight)
            self._pool.submit(self._run_one, job)

    def _run_one(self, job: Job) -> None:
        try:
            result = self.engine.generate([job.request])[0]
            if not job.future.done():
                job.future.set_result(result)
        except Exception as exc:
            if not job.future.done():
                job.future.set_exception(exc)
        finally:
            with self._cond:
                self.in_flight -= 1
                self._cond.notify()

    # -- shared -----------------------------------------------------------------------------

    def _drop_cancelled_waiting(self) -> None:
        kept = [j for j in self.waiting if not self._drop_cancelled(j)]
        if len(kept) != len(self.waiting):
            self.waiting = collections.deque(kept)

    @staticmethod
    def _drop_cancelled(job: Job) -> bool:
        if job.is_cancelled() and not job.future.done():
            job.future.set_exception(TimeoutError("cancelled or timed out before it started"))
            return True
        return False
