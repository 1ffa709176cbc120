"""Running one API request on a model's scheduler: input checks, waiting (with cancellation when
the client goes away), the output guard, streaming, and logging to the store."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

from fastapi import Request

from selftune.engines.base import GenRequest, GenResult
from selftune.errors import SelftuneError
from selftune.guards import GuardedStream, looks_like_injection
from selftune.server import fields
from selftune.server.errors import APIError
from selftune.server.schemas import Sampling, Usage
from selftune.server.state import ServerState

UNATTENDED_HEADER = "x-selftune-unattended"
MAX_SEED = 2**31 - 1  # what every engine's generator accepts (llama.cpp takes 32 bits)


def input_flags(
    state: ServerState, texts: list[str], request: Request, unattended: bool = False
) -> list[str]:
    """Flags about the input; an injection-shaped input is refused when nobody reads first."""
    if not looks_like_injection(texts):
        return []
    unattended = unattended or header_says_unattended(request)
    if unattended and state.serve.refuse_injection:
        raise APIError(
            400,
            "the input looks like a prompt injection and this request is unattended; refused",
            "prompt_injection",
        )
    return ["prompt_injection"]


def header_says_unattended(request: Request) -> bool:
    """`X-Selftune-Unattended: 1 / true / yes / on`, in any case and spacing."""
    value = request.headers.get(UNATTENDED_HEADER, "").strip().casefold()
    return value in ("1", "true", "yes", "on")


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
    if body.seed is not None and not 0 <= body.seed <= MAX_SEED:
        raise APIError(400, f"seed must be between 0 and {MAX_SEED}", None, "seed")
    check_prompt_length(state, body.model, prompt, max_tokens)
    return GenRequest(
        prompt,
        n,
        body.temperature,
        body.top_p,
        max_tokens,
        stop,
        body.seed,
        presence_penalty=body.presence_penalty,
        frequency_penalty=body.frequency_penalty,
        logit_bias=fields.logit_bias(body.logit_bias),
    )


def context_length(engine: Any) -> int | None:
    """How many tokens the engine's model can attend to (None when it does not say)."""
    for get in (
        lambda: engine.context_length,
        lambda: engine.llama.n_ctx(),
        lambda: engine.model.config.max_position_embeddings,
    ):
        try:
            value = get()
        except Exception:  # noqa: S112  (an engine without this attribute)
            continue
        if isinstance(value, int) and value > 0:
            return value
    return None


def check_prompt_length(state: ServerState, model: str, prompt: str, max_tokens: int) -> None:
    """400 before queueing when the prompt is empty, longer than `serve.max_prompt_tokens`, or
    with `max_tokens` more than the model's context: a long prefill would hold every client."""
    if not prompt.strip():
        raise APIError(400, "the prompt is empty; send some text", None, "prompt")
    limit = state.serve.max_prompt_tokens
    if len(prompt) > 64 * limit:  # far past any real prompt: not worth the time to tokenize
        raise APIError(400, f"the prompt is longer than {limit} tokens", "context_length_exceeded")
    engine = state.batcher(model).engine
    tokens = len(engine.tokenizer(prompt, add_special_tokens=False)["input_ids"])
    if tokens > limit:
        raise APIError(
            400,
            f"the prompt has {tokens} tokens; this server takes at most {limit} "
            "(serve.max_prompt_tokens): send less context",
            "context_length_exceeded",
        )
    context = context_length(engine)
    if context is not None and tokens + max_tokens > context:
        raise APIError(
            400,
            f"this model's context is {context} tokens; the prompt has {tokens} and max_tokens "
            f"asks for {max_tokens} more: send less context or lower max_tokens",
            "context_length_exceeded",
            "max_tokens",
        )


class OutputFilter:
    """The guard, then the note-app options, for one request: `filter(text)` for a finished
    candidate, `filter.stream()` for one being streamed (both give the same text)."""

    def __init__(self, state: ServerState, context: str, tag_prefix: str, plain_links: bool):
        self.guard, self.context = state.guard, context
        self.tag_prefix, self.plain_links = tag_prefix, plain_links

    def stream(self) -> GuardedStream:
        return GuardedStream(self.guard, self.context, self.tag_prefix, self.plain_links)

    def __call__(self, text: str) -> str:
        return self.stream().finish_text(text)


def output_transform(state: ServerState, body: Any = None) -> OutputFilter:
    """The guard, then the note-app options (tag prefix, inert links) from settings or request.
    The guard reads the end of the request's own text with the output (a fact begun there)."""
    tag = getattr(body, "tag_prefix", None)
    tag = state.serve.tag_prefix if tag is None else tag
    plain = getattr(body, "plain_links", None)
    plain = state.serve.neutralise_links if plain is None else plain
    return OutputFilter(state, request_context(body), tag, plain)


def request_context(body: Any) -> str:
    """The text the output continues: the prompt, or the last message of a conversation."""
    prompt = getattr(body, "prompt", None)
    if isinstance(prompt, str):
        return prompt
    if isinstance(prompt, list) and prompt and isinstance(prompt[-1], str):
        return prompt[-1]
    messages = getattr(body, "messages", None) or []
    if not messages:
        return ""
    last = messages[-1]
    text = last.text() if callable(getattr(last, "text", None)) else getattr(last, "text", "")
    return text if isinstance(text, str) else ""


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
    fields.check_engine(scheduler.engine, gen, model)
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
    except SelftuneError:
        raise  # a request the engine refuses, with the reason (400)
    except Exception as exc:  # the engine failed on this request (and only on it)
        raise APIError(
            500,
            f"generation failed ({type(exc).__name__}); other requests are unaffected",
            "generation_failed",
        ) from exc
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
    scheduler = state.scheduler(model)
    fields.check_engine(scheduler.engine, gen, model)
    job = scheduler.submit(gen)
    return _events(job, events, gen.n, state, transform)


async def _events(job, events, n, state, transform):  # type: ignore[no-untyped-def]
    future = asyncio.wrap_future(job.future)
    guarded = [
        transform.stream() if isinstance(transform, OutputFilter) else GuardedStream(state.guard)
        for _ in range(n)
    ]
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
        except Exception as exc:  # the engine failed on this request (and only on it)
            yield ("error", -1, f"generation failed ({type(exc).__name__})", None)
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
    review: bool | None = None,
) -> int | None:
    """Log one call's sample; `review: False` keeps it out of the Review queue."""
    params = {
        "n": gen.n,
        "temperature": gen.temperature,
        "top_p": gen.top_p,
        "max_tokens": gen.max_tokens,
        "stop": gen.stop,
        "seed": gen.seed,
    }
    params.update({name: getattr(gen, name) for name in gen.optional_fields()})
    if gen.logit_bias:
        params["logit_bias"] = {str(k): v for k, v in gen.logit_bias.items()}
    if review is not None:
        params["review"] = review
    return state.session.record(endpoint, prompt, params, texts, flags, model)
