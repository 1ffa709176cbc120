"""The upstream engine: any OpenAI-compatible server (vLLM, llama-server, Ollama) runs the model,
and selftune's server stays in front (the twin's prompt, guards, picks, the web page).

Prompts are rendered here with the twin's chat template and sent to the upstream's
`/v1/completions`, so the model sees exactly what it was trained on whatever the upstream's own
template is. Each candidate is one streamed upstream request (seed + index, like the local
engines), all candidates of all clients in flight at once: the upstream batches them. Closing a
stream (a cancelled request) makes the upstream stop generating.
"""

from __future__ import annotations

import json
import os
from concurrent.futures import ThreadPoolExecutor
from typing import Any
from urllib.parse import urlparse

from selftune.engines.base import GenRequest, GenResult, StopScanner
from selftune.errors import SelftuneError


class OpenAIEngine:
    name = "openai"
    concurrent = True  # the scheduler keeps several requests in flight; the upstream batches
    # forwarded as they are (vLLM and llama-server honour them); logprobs are not read back yet
    supports = frozenset({"presence_penalty", "frequency_penalty", "logit_bias", "response_format"})

    def __init__(
        self,
        base_url: str,
        tokenizer: Any,
        model_id: str = "twin",
        upstream_model: str | None = None,
        api_key: str | None = None,
        timeout_s: float = 300,
        max_parallel: int = 64,
    ):
        import httpx

        parsed = urlparse(base_url)
        if parsed.scheme not in ("http", "https") or not parsed.netloc:
            raise SelftuneError(
                f"upstream {base_url!r} is not an http(s) URL; e.g. http://127.0.0.1:8080/v1"
            )
        self.base_url = base_url.rstrip("/")
        if not self.base_url.endswith("/v1"):
            self.base_url += "/v1"
        self.tokenizer = tokenizer
        self.model_id = model_id
        self.upstream_model = upstream_model or model_id
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self.client = httpx.Client(headers=headers, timeout=httpx.Timeout(timeout_s, connect=10))
        self.pool = ThreadPoolExecutor(max_parallel, thread_name_prefix="selftune-upstream-seq")

    @classmethod
    def from_settings(cls, serve: Any, tokenizer: Any, model_id: str) -> OpenAIEngine:
        if serve is None or not serve.upstream:
            raise SelftuneError(
                "--engine openai needs --upstream URL (or serve.upstream in twin.yaml), e.g. "
                "http://127.0.0.1:8080/v1 for llama-server; docs/serving.md has the commands"
            )
        return cls(
            serve.upstream,
            tokenizer,
            model_id,
            serve.upstream_model,
            os.environ.get(serve.upstream_api_key_env) or None,
        )

    def generate(self, requests: list[GenRequest]) -> list[GenResult]:
        return [self._one(r) for r in requests]

    def close(self) -> None:
        self.pool.shutdown(wait=False, cancel_futures=True)
        self.client.close()

    def _one(self, request: GenRequest) -> GenResult:
        prompt_tokens = len(self.tokenizer(request.prompt, add_special_tokens=False)["input_ids"])
        futures = [self.pool.submit(self._candidate, request, i) for i in range(request.n)]
        outs = [f.result() for f in futures]
        return GenResult(
            [o[0] for o in outs], prompt_tokens, [o[1] for o in outs], [o[2] for o in outs]
        )

    def _candidate(self, request: GenRequest, index: int) -> tuple[str, int, str]:
        body: dict[str, Any] = {
            "model": self.upstream_model,
            "prompt": request.prompt,
            "max_tokens": request.max_tokens,
            "temperature": request.temperature,
            "top_p": request.top_p,
            "stream": True,
            "stream_options": {"include_usage": True},
        }
        if request.stop:
            body["stop"] = request.stop
        if request.seed is not None:
            body["seed"] = request.seed + index
        for name in ("presence_penalty", "frequency_penalty", "logit_bias", "response_format"):
            value = getattr(request, name, None)
            if value:
                body[name] = (
                    {str(k): v for k, v in value.items()} if name == "logit_bias" else value
                )
        scanner = StopScanner(request.stop)
        text, tokens, reason = "", None, "length"
        import httpx

        url = f"{self.base_url}/completions"
        try:
            with self.client.stream("POST", url, json=body) as response:
                if response.status_code != 200:
                    response.read()
                    raise SelftuneError(
                        f"the upstream at {self.base_url} answered {response.status_code}: "
                        f"{_error_message(response.text)}"
                    )
                for chunk in _events(response.iter_lines()):
                    if request.cancelled():
                        return scanner.text or text, _count(self, text, tokens), "cancelled"
                    usage = chunk.get("usage") or {}
                    tokens = usage.get("completion_tokens", tokens)
                    for choice in chunk.get("choices") or []:
                        text += choice.get("text") or ""
                        new = scanner.update(text)
                        if new and request.on_text:
                            request.on_text(index, new)
                        if choice.get("finish_reason"):
                            reason = "length" if choice["finish_reason"] == "length" else "stop"
                    if scanner.stopped:
                        reason = "stop"
                        break
        except httpx.HTTPError as exc:
            raise SelftuneError(
                f"the upstream at {self.base_url} is not answering ({exc}); start it "
                "(docs/serving.md) or serve with another --engine"
            ) from exc
        rest = scanner.flush()
        if rest and request.on_text:
            request.on_text(index, rest)
        return scanner.text, _count(self, scanner.text, tokens), reason


def _count(engine: OpenAIEngine, text: str, reported: int | None) -> int:
    if reported is not None:
        return int(reported)
    return len(engine.tokenizer(text, add_special_tokens=False)["input_ids"])


def _events(lines: Any) -> Any:
    """The JSON payloads of a server-sent event stream, up to `[DONE]`."""
    for line in lines:
        if not line.startswith("data:"):
            continue
        data = line[5:].strip()
        if data == "[DONE]":
            return
        try:
            payload = json.loads(data)
        except json.JSONDecodeError:
            raise SelftuneError(f"the upstream sent a malformed event: {data[:80]!r}") from None
        if "error" in payload:
            raise SelftuneError(f"the upstream failed: {_error_message(json.dumps(payload))}")
        yield payload


def _error_message(text: str) -> str:
    try:
        error = json.loads(text).get("error")
    except (json.JSONDecodeError, AttributeError):
        return text[:200]
    if isinstance(error, dict):
        return str(error.get("message", error))[:200]
    return str(error)[:200]
