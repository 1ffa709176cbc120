"""Sampling from the base or tuned model: N candidates for one prompt in one batched call.

A prompt is either text to continue (`complete`, like a note the owner started) or a message
someone sent the owner (`chat`), rendered with the same chat template used in training. The work is
done by an engine (`selftune.engines`); these are the small functions the CLI, the demo and the
evaluation call with a loaded transformers model.
"""

from __future__ import annotations

from typing import Any

from selftune.engines.base import GenRequest, render_chat


def chat_prompt(tokenizer: Any, system: str, message: str) -> str:
    """The prompt for a reply to `message`, rendered exactly as chat examples were in training."""
    messages = [{"role": "system", "content": system}, {"role": "user", "content": message}]
    return render_chat(tokenizer, messages)


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


def reply_messages(
    turns: list[tuple[str, str]],
    me: list[str],
    system: str,
) -> list[dict[str, str]]:
    """Chat messages for drafting the owner's next reply to (author, text) turns, shaped like the
    training examples: the owner's turns are the assistant's, others' consecutive turns merge into
    one user message, with speaker names when more than one other person speaks."""
    mine = {m.casefold() for m in me}
    others = {a for a, _ in turns if a.casefold() not in mine}
    group = len(others) > 1
    out: list[dict[str, str]] = [{"role": "system", "content": system}]
    for author, text in turns:
        is_me = author.casefold() in mine
        role = "assistant" if is_me else "user"
        content = f"{author}: {text}" if group and not is_me else text
        if out[-1]["role"] == role:
            out[-1]["content"] += "\n" + content
        else:
            out.append({"role": role, "content": content})
    return out
