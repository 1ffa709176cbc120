"""The models an evaluation talks to, behind one small interface: the base or tuned side of a run
(one loaded PeftModel, the adapter switched off for the base), or an OpenAI-compatible endpoint.

Every generation done by `selftune eval` and `selftune bench` goes through `Side.chat` /
`Side.complete`: a side generates through a bare `TwinSession` (the model as it is: no guard, no
memory, nothing logged, since the evaluation measures what the model itself writes, leaks
included), an endpoint through the one OpenAI-compatible client (`engines.openai_client`).
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass, field
from typing import Any

from selftune.engines.base import render_chat
from selftune.use import TwinSession


@dataclass
class Side:
    """The base or the tuned model of a run (they share weights; `tuned=False` disables LoRA)."""

    name: str
    model: Any
    tokenizer: Any
    tuned: bool
    _session: TwinSession | None = field(default=None, repr=False)

    @property
    def session(self) -> TwinSession:
        if self._session is None:
            from selftune.engines.transformers_engine import TransformersEngine

            self._session = TwinSession.bare(TransformersEngine(self.model, self.tokenizer))
        return self._session

    def _context(self) -> Any:
        if not self.tuned and hasattr(self.model, "disable_adapter"):
            return self.model.disable_adapter()
        return contextlib.nullcontext()

    def complete(
        self,
        prompt_text: str,
        n: int = 1,
        temperature: float = 0.8,
        max_tokens: int = 48,
        seed: int | None = 0,
    ) -> list[str]:
        return self.complete_many([prompt_text], n, temperature, max_tokens, seed)[0]

    def chat(
        self,
        messages: list[dict[str, str]],
        n: int = 1,
        temperature: float = 0.8,
        max_tokens: int = 48,
        seed: int | None = 0,
    ) -> list[str]:
        return self.complete(
            render_chat(self.tokenizer, messages), n, temperature, max_tokens, seed
        )

    def complete_many(
        self,
        prompts: list[str],
        n: int = 1,
        temperature: float = 0.8,
        max_tokens: int = 48,
        seed: int | None = 0,
    ) -> list[list[str]]:
        """`n` continuations of each prompt, all prompts as rows of one batched generate."""
        from selftune.engines.base import GenRequest

        requests = [GenRequest(p, n, temperature, 0.95, max_tokens, [], seed) for p in prompts]
        with self._context():
            results = self.session.generate(requests)
        return [[t.strip("\n") for t in r.texts] for r in results]

    def chat_many(
        self,
        conversations: list[list[dict[str, str]]],
        n: int = 1,
        temperature: float = 0.8,
        max_tokens: int = 48,
        seed: int | None = 0,
    ) -> list[list[str]]:
        prompts = [render_chat(self.tokenizer, m) for m in conversations]
        return self.complete_many(prompts, n, temperature, max_tokens, seed)

    def option_probabilities(self, prompt_text: str, options: list[str]) -> list[float]:
        """Probability of each option as the next word after `prompt_text`, normalised over the
        options (their first tokens)."""
        import torch

        tok = self.tokenizer
        encoded = tok(prompt_text, return_tensors="pt", add_special_tokens=False)
        with torch.no_grad(), self._context():
            logits = self.model(**encoded).logits[0, -1].float()
        first = [tok.encode(o, add_special_tokens=False)[0] for o in options]
        probs = torch.softmax(logits[first], dim=0)
        return [float(p) for p in probs]

    def nll(self, batch: list[dict[str, list[int]]]) -> list[tuple[float, int]]:
        """(summed negative log-likelihood, scored tokens) of encoded records."""
        from selftune.evaluation.perplexity import token_nll

        pad = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else 0
        with self._context():
            return token_nll(self.model, batch, pad)


@dataclass
class Endpoint:
    """An OpenAI-compatible server (`/v1/chat/completions`, `/v1/completions`). Used only when the
    owner names it; the API key is read from an environment variable, never stored."""

    name: str
    base_url: str
    model_name: str
    api_key_env: str = "OPENAI_API_KEY"
    timeout: float = 120.0

    def _post(self, path: str, payload: dict[str, Any]) -> dict[str, Any]:
        from selftune.engines.openai_client import OpenAIClient

        client = OpenAIClient(self.base_url, os.environ.get(self.api_key_env), self.timeout)
        try:
            return client.post(path, payload)
        finally:
            client.close()

    def _payload(
        self, n: int, temperature: float, max_tokens: int, seed: int | None, **body: object
    ) -> dict[str, object]:
        """The request body both endpoints share; the seed is sent whenever one is given."""
        payload: dict[str, object] = {
            "model": self.model_name,
            **body,
            "n": n,
            "temperature": temperature,
            "max_tokens": max_tokens,
        }
        if seed is not None:
            payload["seed"] = seed
        return payload

    def chat(
        self,
        messages: list[dict[str, str]],
        n: int = 1,
        temperature: float = 0.8,
        max_tokens: int = 48,
        seed: int | None = 0,
    ) -> list[str]:
        payload = self._payload(n, temperature, max_tokens, seed, messages=messages)
        data = self._post("/chat/completions", payload)
        return [c["message"]["content"] or "" for c in data.get("choices", [])]

    def complete(
        self,
        prompt_text: str,
        n: int = 1,
        temperature: float = 0.8,
        max_tokens: int = 48,
        seed: int | None = 0,
    ) -> list[str]:
        payload = self._payload(n, temperature, max_tokens, seed, prompt=prompt_text)
        data = self._post("/completions", payload)
        return [c.get("text", "") for c in data.get("choices", [])]

    def complete_many(
        self, prompts: list[str], n: int = 1, temperature: float = 0.8, max_tokens: int = 48,
        seed: int | None = 0,
    ) -> list[list[str]]:  # fmt: skip
        return [self.complete(p, n, temperature, max_tokens, seed) for p in prompts]

    def chat_many(
        self, conversations: list[list[dict[str, str]]], n: int = 1, temperature: float = 0.8,
        max_tokens: int = 48, seed: int | None = 0,
    ) -> list[list[str]]:  # fmt: skip
        return [self.chat(m, n, temperature, max_tokens, seed) for m in conversations]


def load_sides(run_dir: Any) -> tuple[Side, Side]:
    """(base, tuned) for a finished run: one loaded model with the adapter switched off for the
    base, or, for a full fine-tune, the base loaded beside the tuned model."""
    from selftune.artefacts import RunDir
    from selftune.models import load_model, load_tuned

    model, tokenizer = load_tuned(run_dir)
    run = RunDir(run_dir)
    if run.weights == "full":
        base = load_model(run.base)
        base.eval()
        return Side("base", base, tokenizer, True), Side("tuned", model, tokenizer, True)
    return Side("base", model, tokenizer, False), Side("tuned", model, tokenizer, True)
