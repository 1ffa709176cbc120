"""Sampling from the base or tuned model: N candidates for one prompt in one batched call.

A prompt is either text to continue (like a note the owner started) or a chat rendered with the
twin's prompt (`selftune.twin`) and the same chat template used in training. The work is done by an
engine (`selftune.engines`); this is the small function the demo and the evaluation call with a
loaded transformers model.
"""

from __future__ import annotations

from typing import Any

from selftune.engines.base import GenRequest


def sample(
    model: Any,
    tokenizer: Any,
    prompt_text: str,
    n: int = 4,
    temperature: float = 0.8,
    top_p: float = 0.95,
    max_tokens: int = 128,
    seed: int | None = None,
    stop: list[str] | None = None,
) -> list[str]:
    """`n` continuations of `prompt_text`, generated together in one batch."""
    from selftune.engines.transformers_engine import TransformersEngine

    engine = TransformersEngine(model, tokenizer)
    request = GenRequest(prompt_text, n, temperature, top_p, max_tokens, list(stop or []), seed)
    return [t.strip("\n") for t in engine.generate([request])[0].texts]
