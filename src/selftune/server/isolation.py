"""One bad request fails alone: when the engine fails on a batch, each request of it runs again
by itself, so only the one that fails gets the error and its neighbours get their answers.

A request whose text had already started streaming is not run again (its client would see the
text twice); it fails with the batch. The batching worker calls `generate_isolated` in place of
`engine.generate`.
"""

from __future__ import annotations

import logging
from typing import Any

from selftune.engines.base import GenRequest, GenResult

log = logging.getLogger("selftune.server")


def generate_isolated(engine: Any, requests: list[GenRequest]) -> list[GenResult | Exception]:
    """`engine.generate(requests)`, with a result or the exception for each request."""
    streamed: set[int] = set()
    callbacks = [r.on_text for r in requests]
    if len(requests) > 1:
        for i, request in enumerate(requests):
            if request.on_text is not None:
                request.on_text = _watched(request.on_text, streamed, i)
    try:
        return list(engine.generate(requests))
    except Exception as exc:  # the worker must survive anything one batch does
        log.error("generation failed for %d request(s): %s", len(requests), type(exc).__name__)
        if len(requests) == 1:
            return [exc]
        for request, callback in zip(requests, callbacks, strict=True):
            request.on_text = callback
        return [
            exc if i in streamed else generate_isolated(engine, [request])[0]
            for i, request in enumerate(requests)
        ]
    finally:
        for request, callback in zip(requests, callbacks, strict=True):
            request.on_text = callback


def _watched(callback: Any, streamed: set[int], index: int) -> Any:
    def on_text(candidate: int, text: str) -> None:
        streamed.add(index)
        callback(candidate, text)

    return on_text
