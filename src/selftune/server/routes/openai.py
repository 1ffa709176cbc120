"""OpenAI-compatible routes: `/v1/models`, `/v1/chat/completions`, `/v1/completions`."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import AsyncIterator

from fastapi import APIRouter, Request
from fastapi.responses import StreamingResponse

from selftune.engines.base import render_chat
from selftune.server import runner
from selftune.server.deps import Authorized, State
from selftune.server.errors import APIError
from selftune.server.schemas import (
    AssistantMessage,
    ChatChoice,
    ChatCompletion,
    ChatCompletionRequest,
    Completion,
    CompletionChoice,
    CompletionRequest,
    ModelCard,
    ModelList,
)

router = APIRouter(prefix="/v1", dependencies=[Authorized])


@router.get("/models")
def list_models(state: State) -> ModelList:
    cards = []
    for name in state.model_names():
        spec = state.catalog.get(name)
        choice = state.engine_choice(name)
        cards.append(
            ModelCard(
                id=name,
                created=spec.created if spec else 0,
                engine=choice.kind if choice else None,
                engine_reason=choice.reason if choice else None,
                loaded=name in state.engines,
            )
        )
    return ModelList(data=cards)


@router.post("/chat/completions", response_model=None)
async def chat_completions(body: ChatCompletionRequest, request: Request, state: State):
    messages = [
        {"role": "system" if m.role == "developer" else m.role, "content": m.text()}
        for m in body.messages
        if m.role != "tool"
    ]
    # no system message: the twin's own prompt, as in training (not the base model's stock one)
    messages = state.twin.chat_messages(messages)
    flags = runner.input_flags(
        state, [m["content"] for m in messages if m["role"] == "user"], request
    )
    prompt = render_chat(state.tokenizer(body.model), messages)
    gen = runner.gen_request(state, body, prompt)
    transform = runner.output_transform(state, body)
    cid = f"chatcmpl-{uuid.uuid4().hex[:24]}"
    if body.stream:
        events = runner.open_stream(state, body.model, gen, transform)
        return _sse(_chat_chunks(state, body, gen, events, cid, messages, flags))
    result = await runner.run(state, request, body.model, gen)
    texts = [transform(t) for t in result.texts]
    sample_id = runner.log_sample(state, "chat", body.model, messages, gen, texts, flags)
    return ChatCompletion(
        id=cid,
        created=int(time.time()),
        model=body.model,
        choices=[
            ChatChoice(index=i, message=AssistantMessage(content=t), finish_reason=_reason(r))
            for i, (t, r) in enumerate(zip(texts, result.finish_reasons, strict=True))
        ],
        usage=runner.usage(result),
        selftune={"sample_id": sample_id, "flags": flags},
    )


@router.post("/completions", response_model=None)
async def completions(body: CompletionRequest, request: Request, state: State):
    prompts = [body.prompt] if isinstance(body.prompt, str) else body.prompt
    if len(prompts) != 1:
        raise APIError(
            400, "send one prompt per request (use n for several candidates)", None, "prompt"
        )
    flags = runner.input_flags(state, prompts, request)
    gen = runner.gen_request(state, body, prompts[0])
    state.tokenizer(body.model)  # an unknown model fails here, before any stream starts
    transform = runner.output_transform(state, body)
    cid = f"cmpl-{uuid.uuid4().hex[:24]}"
    if body.stream:
        events = runner.open_stream(state, body.model, gen, transform)
        return _sse(_completion_chunks(state, body, gen, events, cid, prompts[0], flags))
    result = await runner.run(state, request, body.model, gen)
    texts = [transform(t) for t in result.texts]
    sample_id = runner.log_sample(state, "completion", body.model, prompts[0], gen, texts, flags)
    return Completion(
        id=cid,
        created=int(time.time()),
        model=body.model,
        choices=[
            CompletionChoice(index=i, text=t, finish_reason=_reason(r))
            for i, (t, r) in enumerate(zip(texts, result.finish_reasons, strict=True))
        ],
        usage=runner.usage(result),
        selftune={"sample_id": sample_id, "flags": flags},
    )


def _reason(reason: str) -> str:
    return "length" if reason == "length" else "stop"


def _sse(chunks: AsyncIterator[dict | str]) -> StreamingResponse:
    async def body() -> AsyncIterator[str]:
        async for chunk in chunks:
            payload = chunk if isinstance(chunk, str) else json.dumps(chunk, ensure_ascii=False)
            yield f"data: {payload}\n\n"

    return StreamingResponse(
        body(), media_type="text/event-stream", headers={"Cache-Control": "no-cache"}
    )


async def _chat_chunks(state, body, gen, events, cid, messages, flags):  # type: ignore[no-untyped-def]
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
        yield chunk(
            [{"index": i, "delta": {"role": "assistant", "content": ""}, "finish_reason": None}]
        )
    async for kind, i, text, result in events:
        if kind == "delta":
            yield chunk([{"index": i, "delta": {"content": text}, "finish_reason": None}])
        elif kind == "error":
            yield {
                "error": {
                    "message": text,
                    "type": "timeout_error",
                    "param": None,
                    "code": "timeout",
                }
            }
            return
        else:
            for j, reason in enumerate(result.finish_reasons):
                yield chunk([{"index": j, "delta": {}, "finish_reason": _reason(reason)}])
            if (body.stream_options or {}).get("include_usage"):
                yield chunk([], runner.usage(result).model_dump())
            runner.log_sample(state, "chat", body.model, messages, gen, result.texts, flags)
    yield "[DONE]"


async def _completion_chunks(state, body, gen, events, cid, prompt, flags):  # type: ignore[no-untyped-def]
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

    async for kind, i, text, result in events:
        if kind == "delta":
            yield chunk([{"index": i, "text": text, "finish_reason": None, "logprobs": None}])
        elif kind == "error":
            yield {
                "error": {
                    "message": text,
                    "type": "timeout_error",
                    "param": None,
                    "code": "timeout",
                }
            }
            return
        else:
            for j, reason in enumerate(result.finish_reasons):
                yield chunk(
                    [{"index": j, "text": "", "finish_reason": _reason(reason), "logprobs": None}]
                )
            if (body.stream_options or {}).get("include_usage"):
                yield chunk([], runner.usage(result).model_dump())
            runner.log_sample(state, "completion", body.model, prompt, gen, result.texts, flags)
    yield "[DONE]"
