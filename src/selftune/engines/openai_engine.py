"""The upstream engine: any OpenAI-compatible server (vLLM, llama-server, Ollama) runs the model,
and selftune's server stays in front (the twin's prompt, guards, picks, the web page).

Prompts are rendered here with the twin's chat template and sent to the upstream's
`/v1/completions`, so the model sees exactly what it was trained on whatever the upstream's own
template is; the HTTP side is `openai_client.OpenAIClient`. Each candidate is one streamed upstream request (seed + index, like the local
engines), all candidates of all clients in flight at once: the upstream batches them. Closing a
stream (a cancelled request) makes the upstream stop generating.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from selftune.engines.base import GenRequest, GenResult, StopScanner
from selftune.engines.openai_client import OpenAIClient
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
        self.client = OpenAIClient(base_url, api_key, timeout_s)
        self.base_url = self.client.base_url
        self.tokenizer = tokenizer
        self.model_id = model_id
        self.upstream_model = upstream_model or model_id
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
        events = self.client.stream("/completions", body)
        try:
            for chunk in events:
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
        finally:
            events.close()  # closes the upstream stream: the upstream stops generating
        rest = scanner.flush()
        if rest and request.on_text:
            request.on_text(index, rest)
        return scanner.text, _count(self, scanner.text, tokens), reason


def _count(engine: OpenAIEngine, text: str, reported: int | None) -> int:
    if reported is not None:
        return int(reported)
    return len(engine.tokenizer(text, add_special_tokens=False)["input_ids"])
