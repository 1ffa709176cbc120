"""Running one API request on a model's scheduler: input checks, waiting (with cancellation when
the client goes away), the output guard, streaming, and logging to the store."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

from fastapi import Request

from selftune.engines.base import GenRequest, GenResult
from selftune.guards import GuardedStream, for_notes, looks_like_injection
from selftune.server.errors import APIError
from selftune.server.schemas import Sampling, Usage
from selftune.server.state import ServerState

UNATTENDED_HEADER = "x-selftune-unattended"


def input_flags(
    state: ServerState, texts: list[str], request: Request, unattended: bool = False
) -> list[str]:
    """Flags about the input; an injection-shaped input is refused when nobody reads first."""
    if not looks_like_injection(texts):
        return []
    unattended = unattended or request.headers.get(UNATTENDED_HEADER, "") in ("1", "true", "yes")
    if unattended and state.serve.refuse_injection:
        raise APIError(
            400,
            "the input looks like a prompt injection and this request is unattended; refused",
            "prompt_injection",
        )
    return ["prompt_injection"]


def gen_request(
    state: ServerState, body: Sampling, prompt: str, n: int | None = None
) -> GenRequest:
    n = n or body.n
    limit = state.serve
    if n > limit.max_n:
        raise APIError(400, f"n is {n}; this server allows at most {limit.max_n}", None, "n")
    max_tokens = body.max_completion_tokens or body.max_tokens or 128
    if max_tokens > limit.max_tokens_limit:
        raise APIError(
            400,
            f"max_tokens is {max_tokens}; this server allows at most {limit.max_tokens_limit}",
            None,
            "max_tokens",
        )
    stop = body.stop_list()
    if len(stop) > 4:
        raise APIError(400, "at most 4 stop sequences", None, "stop")
    return GenRequest(prompt, n, body.temperature, body.top_p, max_tokens, stop, body.seed)


def output_transform(state: ServerState, body: Any = None) -> Callable[[str], str]:
    """The guard, then the note-app options (tag prefix, inert links) from settings or request."""
    tag = getattr(body, "tag_prefix", None)
    tag = state.serve.tag_prefix if tag is None else tag
    plain = getattr(body, "plain_links", None)
    plain = state.serve.neutralise_links if plain is None else plain

    def transform(text: str) -> str:
        return for_notes(state.guard(text), tag, plain)

    return transform


def usage(result: GenResult) -> Usage:
    done = sum(result.completion_tokens)
    return Usage(
        prompt_tokens=result.prompt_tokens,
        completion_tokens=done,
        total_tokens=result.prompt_tokens + done,
    )


async def run(state: ServerState, request: Request, model: str, gen: GenRequest) -> GenResult:
    """Queue `gen` on the model's scheduler and wait; cancels it if the client disconnects."""
    scheduler = state.scheduler(model)
    job = scheduler.submit(gen)
    future = asyncio.wrap_future(job.future)
    while True:
        done, _ = await asyncio.wait({future}, timeout=0.25)
        if done:
            break
        if await request.is_disconnected():
            job.cancel()
            raise APIError(499, "the client went away; generation cancelled", "cancelled")
    try:
        result = future.result()
    except TimeoutError:
        raise APIError(504, "timed out waiting in the queue", "timeout") from None
    if "cancelled" in result.finish_reasons and time.monotonic() > job.deadline:
        raise APIError(504, f"generation took longer than {scheduler.timeout_s:.0f}s", "timeout")
    return result


def open_stream(
    state: ServerState, model: str, gen: GenRequest, transform: Callable[[str], str]
) -> AsyncIterator[tuple[str, int, str, GenResult | None]]:
    """Queue `gen` now (so a full queue is a 429, not a broken stream) and return its events:
    ("delta", index, text, None) as candidates grow, then ("done", -1, "", result).
    Closing the iterator early (the client went away) cancels the generation."""
    loop = asyncio.get_running_loop()
    events: asyncio.Queue[tuple[int, str]] = asyncio.Queue()
    gen.on_text = lambda i, text: loop.call_soon_threadsafe(events.put_nowait, (i, text))
    job = state.scheduler(model).submit(gen)
    return _events(job, events, gen.n, state, transform)


async def _events(job, events, n, state, transform):  # type: ignore[no-untyped-def]
    future = asyncio.wrap_future(job.future)
    guarded = [GuardedStream(state.guard, transform) for _ in range(n)]
    try:
        while True:
            getter = asyncio.ensure_future(events.get())
            done, _ = await asyncio.wait({getter, future}, return_when=asyncio.FIRST_COMPLETED)
            if getter in done:
                i, text = getter.result()
                safe = guarded[i].feed(text)
                if safe:
                    yield ("delta", i, safe, None)
                continue
            getter.cancel()
            break
        while not events.empty():
            i, text = events.get_nowait()
            guarded[i].feed(text)
        try:
            result = future.result()
        except TimeoutError:
            yield ("error", -1, "timed out waiting in the queue", None)
            return
        for i, g in enumerate(guarded):
            # a candidate whose text never streamed (no callback fired) is sent whole
            if not g.raw and result.texts[i]:
                g.feed(result.texts[i])
            rest = g.finish()
            if rest:
                yield ("delta", i, rest, None)
        result.texts = [transform(t) for t in result.texts]
        yield ("done", -1, "", result)
    finally:
        job.cancel()


def log_sample(
    state: ServerState,
    endpoint: str,
    model: str,
    prompt: Any,
    gen: GenRequest,
    texts: list[str],
    flags: list[str],
) -> int | None:
    params = {
        "n": gen.n,
        "temperature": gen.temperature,
        "top_p": gen.top_p,
        "max_tokens": gen.max_tokens,
        "stop": gen.stop,
        "seed": gen.seed,
    }
    return state.log.add(endpoint, model, prompt, params, texts, flags)
