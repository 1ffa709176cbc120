"""Which OpenAI request fields the server honours and which it refuses, in one place.

A field is honoured (`user`: who sees the reply, for memory; `store: false`: nothing logged),
accepted because it changes nothing here (`metadata`, `service_tier`, ...),
or refused with HTTP 400, `code: "unsupported_parameter"` and the field in `param` when it asks for
something the twin or the serving engine cannot do. Nothing a client sends is silently dropped:
fields OpenAI does not define are named back in the response (`selftune.ignored`).
"""

from __future__ import annotations

from typing import Any

from selftune.engines.base import GenRequest, unsupported
from selftune.server.errors import APIError
from selftune.server.schemas import ChatCompletionRequest, CompletionRequest

NO_TOOLS = (
    "the twin writes as its owner would and does not call tools or functions; send the request "
    "without them"
)
ENGINE_HINTS = {
    "response_format": "JSON output needs llguidance on the transformers engine (pip install "
    "llguidance, a dependency of selftune) or llama-cpp-python (--engine auto or llamacpp)",
}


def refuse(param: str, message: str) -> APIError:
    return APIError(400, message, "unsupported_parameter", param)


def invalid(param: str | None, message: str) -> APIError:
    return APIError(400, message, None, param)


def chat_messages(body: ChatCompletionRequest) -> list[dict[str, str]]:
    """The request's messages as the twin's chat template takes them; refuses what it cannot
    read (tool results and calls, images, audio, files)."""
    out = []
    for i, m in enumerate(body.messages):
        where = f"messages.[{i}]"
        if m.role in ("tool", "function"):
            raise refuse(f"{where}.role", f"messages with role '{m.role}': {NO_TOOLS}")
        if m.tool_calls or m.function_call:
            raise refuse(f"{where}.tool_calls", f"assistant tool calls: {NO_TOOLS}")
        if isinstance(m.content, list):
            for j, part in enumerate(m.content):
                kind = part.get("type")
                if kind != "text":
                    raise refuse(
                        f"{where}.content.[{j}].type",
                        f"content parts of type '{kind}' are not supported: the twin reads text "
                        "only; send the text as a string or as parts of type 'text'",
                    )
        role = "system" if m.role == "developer" else m.role
        content = m.text()
        if m.name and role == "user":  # group chats were trained as "Name: text" user turns
            content = f"{m.name}: {content}"
        out.append({"role": role, "content": content})
    return out


def check_chat(body: ChatCompletionRequest) -> None:
    """Refuse the chat fields no engine here can honour; check the ones that must agree."""
    if body.tools or body.functions:
        raise refuse("tools" if body.tools else "functions", f"tools: {NO_TOOLS}")
    for name in ("tool_choice", "function_call"):
        value = getattr(body, name)
        if value not in (None, "none", "auto"):
            raise refuse(name, f"{name} {value!r}: {NO_TOOLS}")
    if body.modalities not in (None, ["text"]):
        raise refuse("modalities", "the twin answers in text only; send modalities ['text']")
    for name, why in (
        ("audio", "the twin answers in text only"),
        ("prediction", "predicted outputs are not supported"),
        ("web_search_options", "the twin does not search the web"),
        ("reasoning_effort", "the twin is not a reasoning model"),
        ("verbosity", "the twin writes at its owner's length; use max_tokens to limit it"),
    ):
        if getattr(body, name) is not None:
            raise refuse(name, f"{name}: {why}")
    if body.top_logprobs and not body.logprobs:
        raise invalid("top_logprobs", "top_logprobs needs logprobs: true")
    _check_response_format(body.response_format)


def _check_response_format(fmt: dict[str, Any] | None) -> None:
    if fmt is None:
        return
    kind = fmt.get("type")
    if kind not in ("text", "json_object", "json_schema"):
        raise invalid(
            "response_format.type",
            f"response_format type {kind!r}: use 'text', 'json_object' or 'json_schema'",
        )
    if kind == "json_schema":
        spec = fmt.get("json_schema")
        if not isinstance(spec, dict) or not isinstance(spec.get("schema", {}), dict):
            raise invalid(
                "response_format.json_schema",
                "response_format json_schema needs {'json_schema': {'name': ..., 'schema': {...}}}",
            )


def check_completion(body: CompletionRequest) -> None:
    """Refuse the legacy completion fields that cannot be honoured."""
    if body.suffix:
        raise refuse("suffix", "suffix (text insertion) is not supported; send the prompt only")
    if body.best_of is not None and body.best_of < body.n:
        raise invalid("best_of", f"best_of ({body.best_of}) must be at least n ({body.n})")
    if body.stream and (body.best_of or body.n) > body.n:
        raise invalid("best_of", "best_of > n cannot stream (the best are known at the end)")
    if body.echo and body.logprobs is not None:
        raise refuse(
            "echo",
            "echo with logprobs needs the prompt's log-probabilities, which this server does not "
            "compute; send echo or logprobs",
        )


def logit_bias(raw: dict[str, float] | None, vocab_size: int | None = None) -> dict[int, float]:
    """OpenAI's {"token id": bias} as {id: bias}, each id and bias checked."""
    out: dict[int, float] = {}
    for key, value in (raw or {}).items():
        try:
            token = int(key)
        except ValueError:
            raise invalid("logit_bias", f"logit_bias key {key!r} is not a token id") from None
        if token < 0 or (vocab_size is not None and token >= vocab_size):
            raise invalid(
                "logit_bias",
                f"logit_bias token {token} is outside the vocabulary (0..{vocab_size})",
            )
        if not -100 <= value <= 100:
            raise invalid("logit_bias", f"logit_bias for {token} is {value}; use -100 to 100")
        out[token] = float(value)
    return out


def best_of(engine: Any, model: str) -> None:
    """best_of > n ranks candidates by their log-probabilities: the engine must give them."""
    if "logprobs" not in getattr(engine, "supports", frozenset()):
        raise refuse(
            "best_of",
            f"best_of > n needs log-probabilities, which the {getattr(engine, 'name', 'serving')} "
            f"engine serving '{model}' does not give; ask for n candidates",
        )


def check_engine(engine: Any, gen: GenRequest, model: str) -> None:
    """Refuse a request that sets a field the engine serving `model` cannot honour."""
    missing = unsupported(engine, gen)
    if missing:
        name = missing[0]
        hint = ENGINE_HINTS.get(name, "send the request without it")
        raise refuse(
            name,
            f"{name} is not supported by the {getattr(engine, 'name', 'serving')} engine that "
            f"serves '{model}'; {hint}",
        )
