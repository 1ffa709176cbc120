"""OpenAI's Responses API: `POST /v1/responses`, `GET` and `DELETE /v1/responses/{id}`.

Text in, text out, on the same machinery as `/v1/chat/completions` (dispatch: input checks, the
scheduler, the output guard, streaming, the sample log): `input` is a string or a list of
messages, `instructions` is the system message (without it, the twin's own prompt and memory, as
in chat), `max_output_tokens`, `temperature`, `top_p`, `text.format` (JSON on llama.cpp) and
`stream` (OpenAI's typed events: `response.created` ... `response.output_text.delta` ...
`response.completed`). `previous_response_id` continues a conversation this server answered:
the last `KEEP` responses are kept in memory (never on disk; lost on restart; `store: false`
keeps none), and an unknown id is a 400 that says so. Tools, reasoning, background runs,
conversations, prompt templates and non-text input are refused with a 400 naming the field.
"""

from __future__ import annotations

import time
import uuid
from collections import OrderedDict
from collections.abc import AsyncIterator
from types import SimpleNamespace
from typing import Any

from fastapi import APIRouter, Request

from selftune.engines.base import GenResult
from selftune.server import dispatch, fields
from selftune.server.deps import Authorized, State
from selftune.server.errors import APIError
from selftune.server.fields import NO_TOOLS, invalid, refuse
from selftune.server.schemas import ResponseRequest, Sampling
from selftune.server.sse import event_stream

router = APIRouter(prefix="/v1", dependencies=[Authorized])

KEEP = 128  # responses kept for previous_response_id and GET (oldest dropped first)
ROLES = {"user": "user", "assistant": "assistant", "system": "system", "developer": "system"}
TEXT_PARTS = ("input_text", "output_text", "text")
REFUSED = (
    ("include", "include: nothing beyond the output text is available"),
    ("reasoning", "reasoning: the twin is not a reasoning model"),
    ("background", "background responses are not supported; send the request and wait"),
    ("conversation", "conversations are not kept; use previous_response_id"),
    ("prompt", "prompt templates are not supported; send input (and instructions)"),
    ("top_logprobs", "top_logprobs is not supported on /v1/responses; use /v1/chat/completions"),
    ("max_tool_calls", f"max_tool_calls: {NO_TOOLS}"),
)


class Kept:
    """The last `KEEP` responses: each one's conversation (for previous_response_id) and body."""

    def __init__(self) -> None:
        self.items: OrderedDict[str, tuple[list[dict[str, str]], dict[str, Any]]] = OrderedDict()

    def put(self, rid: str, messages: list[dict[str, str]], body: dict[str, Any]) -> None:
        self.items[rid] = (messages, body)
        while len(self.items) > KEEP:
            self.items.popitem(last=False)

    def get(self, rid: str, param: str | None = "previous_response_id") -> tuple[list, dict]:
        if rid not in self.items:
            raise APIError(
                400 if param else 404,
                f"no response with id '{rid}' here: this server keeps its last {KEEP} responses "
                "in memory (not across restarts, nor those sent with store: false)",
                "previous_response_not_found" if param else "not_found",
                param,
            )
        return self.items[rid]


def kept(request: Request) -> Kept:
    found = getattr(request.app.state, "responses", None)
    if found is None:
        found = request.app.state.responses = Kept()
    return found


def check(body: ResponseRequest) -> None:
    """Refuse what a text-only twin cannot do, naming the field."""
    if body.tools:
        raise refuse("tools", f"tools: {NO_TOOLS}")
    if body.tool_choice not in (None, "none", "auto"):
        raise refuse("tool_choice", f"tool_choice {body.tool_choice!r}: {NO_TOOLS}")
    for name, why in REFUSED:
        value = getattr(body, name)
        if value not in (None, [], {}, False) and not (name == "reasoning" and _no_effort(value)):
            raise refuse(name, why)


def _no_effort(reasoning: dict[str, Any]) -> bool:
    return all(v in (None, "none", "minimal") for v in reasoning.values())


def input_messages(body: ResponseRequest) -> list[dict[str, str]]:
    """`input` as chat messages; refuses items that are not text messages."""
    if isinstance(body.input, str):
        return [{"role": "user", "content": body.input}]
    out = []
    for i, item in enumerate(body.input):
        where = f"input.[{i}]"
        kind = item.get("type", "message")
        if kind != "message":
            raise refuse(f"{where}.type", f"input items of type '{kind}': {NO_TOOLS}")
        role = ROLES.get(item.get("role", ""))
        if role is None:
            raise invalid(f"{where}.role", "role must be user, assistant, system or developer")
        content = item.get("content", "")
        if isinstance(content, list):
            texts = []
            for j, part in enumerate(content):
                if part.get("type") not in TEXT_PARTS:
                    raise refuse(
                        f"{where}.content.[{j}].type",
                        f"content parts of type '{part.get('type')}' are not supported: the twin "
                        "reads text only; send input_text parts or a string",
                    )
                texts.append(part.get("text", ""))
            content = "".join(texts)
        if not isinstance(content, str):
            raise invalid(f"{where}.content", "content must be a string or a list of text parts")
        out.append({"role": role, "content": content})
    if not out:
        raise invalid("input", "input is empty; send a string or at least one message")
    return out


def response_format(text: dict[str, Any] | None) -> dict[str, Any] | None:
    """`text.format` in chat's `response_format` shape (None for plain text)."""
    fmt = (text or {}).get("format") or {"type": "text"}
    kind = fmt.get("type")
    if kind == "text":
        return None
    if kind == "json_object":
        return {"type": "json_object"}
    if kind == "json_schema" and isinstance(fmt.get("schema"), dict):
        spec = {"name": fmt.get("name") or "response", "schema": fmt["schema"]}
        return {"type": "json_schema", "json_schema": {**spec, "strict": fmt.get("strict")}}
    raise invalid("text.format", "text.format type must be 'text', 'json_object' or 'json_schema'")


@router.post("/responses", response_model=None)
async def create_response(body: ResponseRequest, request: Request, state: State):
    check(body)
    store = kept(request)
    history = store.get(body.previous_response_id)[0] if body.previous_response_id else []
    conversation = history + input_messages(body)
    messages = list(conversation)
    if body.instructions is not None:
        messages = [{"role": "system", "content": body.instructions}, *messages]
    tokenizer = state.tokenizer(body.model)
    messages = state.session.chat_messages(messages, body.user, tokenizer)
    user_texts = [m["content"] for m in messages if m["role"] == "user"]
    flags = dispatch.input_flags(state, user_texts, request)
    prompt = state.session.render(messages, tokenizer)
    sampling = Sampling(model=body.model, max_tokens=body.max_output_tokens, user=body.user)
    for name in ("temperature", "top_p"):
        if getattr(body, name) is not None:
            setattr(sampling, name, getattr(body, name))
    gen = dispatch.gen_request(state, sampling, prompt)
    gen.response_format = response_format(body.text)
    try:  # before any stream starts, with the field named as the Responses API names it
        fields.check_engine(state.batcher(body.model).engine, gen, body.model)
    except APIError as exc:
        exc.param = "text.format" if exc.param == "response_format" else exc.param
        raise
    # the guard reads the end of the last message with the output (a fact begun there)
    transform = dispatch.output_transform(
        state, SimpleNamespace(prompt=conversation[-1]["content"])
    )
    shell = _shell(body, f"resp_{uuid.uuid4().hex}", f"msg_{uuid.uuid4().hex}")

    def finish(result: GenResult, text: str) -> dict[str, Any]:
        sample_id = dispatch.log_sample(
            state, "responses", body.model, messages, gen, [text], flags
        )
        done = _finished(shell, result, text, sample_id, flags)
        if body.store is not False:
            reply = {"role": "assistant", "content": text}
            store.put(shell["id"], [*conversation, reply], done)
        return done

    if body.stream:
        events = dispatch.open_stream(state, body.model, gen, transform)
        return event_stream(_events(shell, events, finish), named=True)
    result = await dispatch.run(state, request, body.model, gen)
    return finish(result, transform(result.texts[0]))


@router.get("/responses/{response_id}")
def get_response(response_id: str, request: Request) -> dict[str, Any]:
    return kept(request).get(response_id, None)[1]


@router.delete("/responses/{response_id}")
def delete_response(response_id: str, request: Request) -> dict[str, Any]:
    store = kept(request)
    store.get(response_id, None)
    del store.items[response_id]
    return {"id": response_id, "object": "response", "deleted": True}


def _shell(body: ResponseRequest, rid: str, mid: str) -> dict[str, Any]:
    """The response object before any output (what `response.created` carries)."""
    fmt = (body.text or {}).get("format") or {"type": "text"}
    return {
        "id": rid,
        "object": "response",
        "created_at": int(time.time()),
        "status": "in_progress",
        "error": None,
        "incomplete_details": None,
        "instructions": body.instructions,
        "max_output_tokens": body.max_output_tokens,
        "model": body.model,
        "output": [],
        "parallel_tool_calls": False,
        "previous_response_id": body.previous_response_id,
        "reasoning": {"effort": None, "summary": None},
        "store": body.store is not False,
        "temperature": body.temperature,
        "text": {"format": fmt},
        "tool_choice": "none",
        "tools": [],
        "top_p": body.top_p,
        "truncation": "disabled",
        "usage": None,
        "user": body.user,
        "metadata": body.metadata or {},
        "_message_id": mid,
        "selftune": {"ignored": body.ignored()} if body.ignored() else {},
    }


def _message(shell: dict[str, Any], text: str, status: str) -> dict[str, Any]:
    part = {"type": "output_text", "text": text, "annotations": [], "logprobs": []}
    return {
        "id": shell["_message_id"],
        "type": "message",
        "role": "assistant",
        "status": status,
        "content": [part] if status != "in_progress" else [],
    }


def _finished(
    shell: dict[str, Any], result: GenResult, text: str, sample_id: int | None, flags: list[str]
) -> dict[str, Any]:
    cut = result.finish_reasons[0] == "length"
    out = dispatch.usage(result)
    done = {k: v for k, v in shell.items() if not k.startswith("_")}
    done.update(
        status="incomplete" if cut else "completed",
        incomplete_details={"reason": "max_output_tokens"} if cut else None,
        output=[_message(shell, text, "incomplete" if cut else "completed")],
        usage={
            "input_tokens": out.prompt_tokens,
            "input_tokens_details": {"cached_tokens": 0},
            "output_tokens": out.completion_tokens,
            "output_tokens_details": {"reasoning_tokens": 0},
            "total_tokens": out.total_tokens,
        },
        selftune={**shell["selftune"], "sample_id": sample_id, "flags": flags},
    )
    return done


async def _events(shell, events, finish) -> AsyncIterator[dict[str, Any]]:  # type: ignore[no-untyped-def]
    """OpenAI's streaming events for one text message, each with its sequence number."""
    seq = 0
    public = {k: v for k, v in shell.items() if not k.startswith("_")}
    where = {"item_id": shell["_message_id"], "output_index": 0}

    def event(kind: str, **fields: Any) -> dict[str, Any]:
        nonlocal seq
        seq += 1
        return {"type": kind, "sequence_number": seq - 1, **fields}

    yield event("response.created", response=public)
    yield event("response.in_progress", response=public)
    yield event(
        "response.output_item.added", output_index=0, item=_message(shell, "", "in_progress")
    )
    empty = {"type": "output_text", "text": "", "annotations": [], "logprobs": []}
    yield event("response.content_part.added", **where, content_index=0, part=empty)
    async for kind, _, text, result in events:
        if kind == "delta":
            yield event(
                "response.output_text.delta", **where, content_index=0, delta=text, logprobs=[]
            )
        elif kind == "error":
            failed = {
                **public,
                "status": "failed",
                "error": {"code": "server_error", "message": text},
            }
            yield event("error", code="server_error", message=text, param=None)
            yield event("response.failed", response=failed)
            return
        else:
            done = finish(result, result.texts[0])
            item = done["output"][0]
            part = item["content"][0]
            yield event(
                "response.output_text.done",
                **where,
                content_index=0,
                text=part["text"],
                logprobs=[],
            )
            yield event("response.content_part.done", **where, content_index=0, part=part)
            yield event("response.output_item.done", output_index=0, item=item)
            final = (
                "response.incomplete" if done["status"] == "incomplete" else "response.completed"
            )
            yield event(final, response=done)
