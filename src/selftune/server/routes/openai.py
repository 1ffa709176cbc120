"""OpenAI-compatible routes: `/v1/models`, `/v1/models/{id}`, `/v1/chat/completions`,
`/v1/completions`. What each request field does here is decided in `server/fields.py`."""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

from fastapi import APIRouter, Request

from selftune.engines.base import GenResult, TokenLogprob
from selftune.server import dispatch, fields
from selftune.server.deps import Authorized, State, is_owner
from selftune.server.errors import APIError
from selftune.server.schemas import (
    AssistantMessage,
    ChatChoice,
    ChatCompletion,
    ChatCompletionRequest,
    ChatLogprobs,
    Completion,
    CompletionChoice,
    CompletionLogprobs,
    CompletionRequest,
    ModelCard,
    ModelList,
    TokenLogprobOut,
    TopLogprob,
)
from selftune.server.sse import event_stream
from selftune.server.state import ServerState, UnknownModel

router = APIRouter(prefix="/v1", dependencies=[Authorized])


@router.get("/models")
def list_models(state: State) -> ModelList:
    return ModelList(data=[_card(state, name) for name in state.model_names()])


@router.get("/models/{model_id:path}")
def get_model(model_id: str, state: State) -> ModelCard:
    if model_id not in state.model_names():
        raise UnknownModel(
            f"the model '{model_id}' does not exist; GET /v1/models lists "
            f"{', '.join(state.model_names())}"
        )
    return _card(state, model_id)


def _card(state: ServerState, name: str) -> ModelCard:
    """The model, and which engine serves it (or would, once loaded) and why."""
    spec = state.catalog.get(name)
    choice = state.engine_choice(name)
    return ModelCard(
        id=name,
        created=spec.created if spec else 0,
        engine=choice.kind if choice else None,
        engine_reason=choice.reason if choice else None,
        loaded=name in state.engines,
    )


@router.post("/chat/completions", response_model=None)
async def chat_completions(body: ChatCompletionRequest, request: Request, state: State):
    fields.check_chat(body)
    messages = fields.chat_messages(body)
    # no system message: the twin's own prompt, as in training (not the base model's stock one),
    # with its memory block for the last message: `user` names who sees the reply; without it
    # the owner's key (or page) recalls everything and anyone else gets public facts only
    tokenizer = state.tokenizer(body.model)
    owner = is_owner(request)
    messages = state.session.chat_messages(messages, body.user, tokenizer, owner=owner)
    flags = dispatch.input_flags(
        state, [m["content"] for m in messages if m["role"] == "user"], request
    )
    prompt = state.session.render(messages, tokenizer)
    gen = dispatch.gen_request(state, body, prompt)
    fields.logit_bias(body.logit_bias, len(tokenizer))
    gen.logprobs = bool(body.logprobs)
    gen.top_logprobs = body.top_logprobs or 0
    fmt = body.response_format
    gen.response_format = fmt if fmt and fmt.get("type") != "text" else None
    transform = dispatch.output_transform(state, body)
    cid = f"chatcmpl-{uuid.uuid4().hex[:24]}"
    extra = _extra(body, state)
    if body.stream:
        events = dispatch.open_stream(state, body.model, gen, transform)
        return event_stream(_chat_chunks(state, body, gen, events, cid, messages, flags, extra))
    result = _ranked(state, body, await dispatch.run(state, request, body.model, gen), extra)
    texts = [transform(t) for t in result.texts]
    logprobs = _shown_logprobs(state, result.logprobs, len(texts), flags)
    sample_id = _log(state, body, "chat", messages, gen, texts, flags)
    return ChatCompletion(
        id=cid,
        created=int(time.time()),
        model=body.model,
        choices=[
            ChatChoice(
                index=i,
                message=AssistantMessage(content=t),
                finish_reason=_reason(r),
                logprobs=_chat_logprobs(logprobs[i]) if gen.logprobs else None,
            )
            for i, (t, r) in enumerate(zip(texts, result.finish_reasons, strict=True))
        ],
        usage=dispatch.usage(result),
        selftune={"sample_id": sample_id, "flags": flags, **extra},
    )


@router.post("/completions", response_model=None)
async def completions(body: CompletionRequest, request: Request, state: State):
    fields.check_completion(body)
    prompts = [body.prompt] if isinstance(body.prompt, str) else body.prompt
    if len(prompts) != 1:
        raise APIError(
            400, "send one prompt per request (use n for several candidates)", None, "prompt"
        )
    flags = dispatch.input_flags(state, prompts, request)
    best_of = max(body.best_of or body.n, body.n)
    gen = dispatch.gen_request(state, body, prompts[0], best_of)
    tokenizer = state.tokenizer(body.model)  # an unknown model fails here, before any stream
    fields.logit_bias(body.logit_bias, len(tokenizer))
    if best_of > body.n:
        fields.best_of(state.batcher(body.model).engine, body.model)
    gen.logprobs = body.logprobs is not None or best_of > body.n
    gen.top_logprobs = body.logprobs or 0
    transform = dispatch.output_transform(state, body)
    cid = f"cmpl-{uuid.uuid4().hex[:24]}"
    extra = _extra(body, state)
    if body.stream:
        events = dispatch.open_stream(state, body.model, gen, transform)
        return event_stream(
            _completion_chunks(state, body, gen, events, cid, prompts[0], flags, extra)
        )
    result = await dispatch.run(state, request, body.model, gen)
    usage = dispatch.usage(result)  # all best_of candidates were generated
    if best_of > body.n:
        result = _best(result, body.n)
    result = _ranked(state, body, result, extra)
    texts = [transform(t) for t in result.texts]
    logprobs = _shown_logprobs(state, result.logprobs, len(texts), flags)
    sample_id = _log(state, body, "completion", prompts[0], gen, texts, flags)
    echo = prompts[0] if body.echo else ""
    shown = body.logprobs is not None
    return Completion(
        id=cid,
        created=int(time.time()),
        model=body.model,
        choices=[
            CompletionChoice(
                index=i,
                text=echo + t,
                finish_reason=_reason(r),
                logprobs=_completion_logprobs(logprobs[i], len(prompts[0])) if shown else None,
            )
            for i, (t, r) in enumerate(zip(texts, result.finish_reasons, strict=True))
        ],
        usage=usage,
        selftune={"sample_id": sample_id, "flags": flags, **extra},
    )


def _best(result: GenResult, n: int) -> GenResult:
    """The `n` candidates with the highest mean log-probability per token (OpenAI's best_of)."""
    entries = result.logprobs or [[] for _ in result.texts]

    def score(i: int) -> float:
        return sum(e.logprob for e in entries[i]) / len(entries[i]) if entries[i] else -1e9

    best = sorted(range(len(result.texts)), key=score, reverse=True)[:n]
    return GenResult(
        [result.texts[i] for i in best],
        result.prompt_tokens,
        [result.completion_tokens[i] for i in best],
        [result.finish_reasons[i] for i in best],
        [entries[i] for i in best],
    )


def _reason(reason: str) -> str:
    return "length" if reason == "length" else "stop"


def _extra(body: Any, state: ServerState | None = None) -> dict[str, Any]:
    """`selftune` in the response: the fields not acted on (`ignored`: fields OpenAI does not
    define, and `rank` when it cannot be: a stream's order is fixed as it is sent, and without
    a trained ranker there is nothing to rank by), and `stored: false` for `store: false`."""
    ignored = body.ignored()
    if body.rank and (body.stream or state is None or state.ranker is None):
        ignored = sorted({*ignored, "rank"})
    out: dict[str, Any] = {"ignored": ignored} if ignored else {}
    if body.store is False:
        out["stored"] = False
    return out


def _ranked(state: ServerState, body: Any, result: GenResult, extra: dict) -> GenResult:
    """The candidates best-first by the preference ranker when `rank` (else `serve.rank`) asks
    and a ranker is trained, their finish reasons and log-probabilities moved with them."""
    wanted = state.serve.rank if body.rank is None else body.rank
    if not wanted or state.ranker is None or len(result.texts) < 2:
        return result
    order = state.session.ranking(result.texts)
    entries = result.logprobs
    return GenResult(
        [result.texts[i] for i in order],
        result.prompt_tokens,
        [result.completion_tokens[i] for i in order],
        [result.finish_reasons[i] for i in order],
        [entries[i] for i in order] if entries is not None else None,
    )


def _log(state: ServerState, body: Any, endpoint: str, prompt: Any, gen: Any, texts: list[str],
         flags: list[str]) -> int | None:  # fmt: skip
    """Log the call unless it asked not to be stored (OpenAI's `store: false`); it waits in the
    Review queue only when it asked for review (`review: true`)."""
    if body.store is False:
        return None
    return dispatch.log_sample(state, endpoint, body.model, prompt, gen, texts, flags,
                               review=bool(body.review))  # fmt: skip


def _shown_logprobs(
    state: ServerState, logprobs: list[list[TokenLogprob]] | None, n: int, flags: list[str]
) -> list[list[TokenLogprob] | None]:
    """Each candidate's token log-probabilities, withheld (None) where the output guard changed
    the text: the tokens would show what it redacted."""
    if logprobs is None:
        return [None] * n
    shown: list[list[TokenLogprob] | None] = []
    for entries in logprobs:
        raw = "".join(e.token for e in entries)
        if state.guard(raw) != raw:
            shown.append(None)
            if "logprobs_withheld" not in flags:
                flags.append("logprobs_withheld")
        else:
            shown.append(entries)
    return shown


def _top(entry: TokenLogprob) -> TopLogprob:
    return TopLogprob(token=entry.token, logprob=entry.logprob, bytes=entry.bytes)


def _chat_logprobs(entries: list[TokenLogprob] | None) -> ChatLogprobs:
    if entries is None:
        return ChatLogprobs(content=None)
    return ChatLogprobs(
        content=[
            TokenLogprobOut(
                token=e.token,
                logprob=e.logprob,
                bytes=e.bytes,
                top_logprobs=[_top(t) for t in e.top],
            )
            for e in entries
        ]
    )


def _completion_logprobs(entries: list[TokenLogprob] | None, offset: int) -> CompletionLogprobs:
    entries = entries or []
    offsets = []
    for e in entries:
        offsets.append(offset)
        offset += len(e.token)
    return CompletionLogprobs(
        tokens=[e.token for e in entries],
        token_logprobs=[e.logprob for e in entries],
        top_logprobs=[{t.token: t.logprob for t in e.top} for e in entries],
        text_offset=offsets,
    )


def _stream_error(text: str) -> dict[str, Any]:
    return {"error": {"message": text, "type": "timeout_error", "param": None, "code": "timeout"}}


async def _chat_chunks(state, body, gen, events, cid, messages, flags, extra) -> AsyncIterator:  # type: ignore[no-untyped-def]
    created = int(time.time())

    def chunk(choices: list[dict], usage: dict | None = None) -> dict:
        out = {
            "id": cid,
            "object": "chat.completion.chunk",
            "created": created,
            "model": body.model,
            "choices": choices,
        }
        if usage is not None:
            out["usage"] = usage
        return out

    for i in range(gen.n):
        first = chunk(
            [{"index": i, "delta": {"role": "assistant", "content": ""}, "finish_reason": None}]
        )
        yield {**first, "selftune": extra} if extra and i == 0 else first
    async for kind, i, text, result in events:
        if kind == "delta":
            yield chunk([{"index": i, "delta": {"content": text}, "finish_reason": None}])
        elif kind == "error":
            yield _stream_error(text)
            return
        else:
            logprobs = _shown_logprobs(state, result.logprobs, gen.n, flags)
            for j, reason in enumerate(result.finish_reasons):
                if gen.logprobs:
                    shown = _chat_logprobs(logprobs[j]).model_dump()
                    yield chunk(
                        [{"index": j, "delta": {}, "logprobs": shown, "finish_reason": None}]
                    )
                yield chunk([{"index": j, "delta": {}, "finish_reason": _reason(reason)}])
            if (body.stream_options or {}).get("include_usage"):
                yield chunk([], dispatch.usage(result).model_dump())
            _log(state, body, "chat", messages, gen, result.texts, flags)
    yield "[DONE]"


async def _completion_chunks(state, body, gen, events, cid, prompt, flags, extra) -> AsyncIterator:  # type: ignore[no-untyped-def]
    created = int(time.time())

    def chunk(choices: list[dict], usage: dict | None = None) -> dict:
        out = {
            "id": cid,
            "object": "text_completion",
            "created": created,
            "model": body.model,
            "choices": choices,
        }
        if usage is not None:
            out["usage"] = usage
        return out

    if extra:
        yield {**chunk([]), "selftune": extra}
    if body.echo:
        for i in range(gen.n):
            yield chunk([{"index": i, "text": prompt, "finish_reason": None, "logprobs": None}])
    async for kind, i, text, result in events:
        if kind == "delta":
            yield chunk([{"index": i, "text": text, "finish_reason": None, "logprobs": None}])
        elif kind == "error":
            yield _stream_error(text)
            return
        else:
            logprobs = _shown_logprobs(state, result.logprobs, gen.n, flags)
            for j, reason in enumerate(result.finish_reasons):
                shown = (
                    _completion_logprobs(logprobs[j], len(prompt)).model_dump()
                    if gen.logprobs
                    else None
                )
                yield chunk(
                    [{"index": j, "text": "", "finish_reason": _reason(reason), "logprobs": shown}]
                )
            if (body.stream_options or {}).get("include_usage"):
                yield chunk([], dispatch.usage(result).model_dump())
            _log(state, body, "completion", prompt, gen, result.texts, flags)
    yield "[DONE]"
