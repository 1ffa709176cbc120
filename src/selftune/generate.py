"""Sampling from the base or tuned model: N candidates for one prompt in one batched call.

A prompt is either text to continue (`complete`, like a note the owner started) or a message
someone sent the owner (`chat`), rendered with the same chat template used in training.
"""

from __future__ import annotations

from typing import Any


def chat_prompt(tokenizer: Any, system: str, message: str) -> str:
    """The prompt for a reply to `message`, rendered exactly as chat examples were in training."""
    messages = [{"role": "system", "content": system}, {"role": "user", "content": message}]
    return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)


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
    import torch

    if seed is not None:
        torch.manual_seed(seed)
    encoded = tokenizer(prompt_text, return_tensors="pt", add_special_tokens=False)
    # the model's own end-of-turn tokens (e.g. <|im_end|>, <|eot_id|>) and the tokenizer's eos
    configured = model.generation_config.eos_token_id
    stop_ids = list(configured) if isinstance(configured, list) else [configured]
    stop_ids = [t for t in {*stop_ids, tokenizer.eos_token_id} if t is not None]
    greedy = temperature == 0
    with torch.no_grad():
        output = model.generate(
            **encoded,
            max_new_tokens=max_tokens,
            do_sample=not greedy,
            temperature=None if greedy else temperature,
            top_p=None if greedy else top_p,
            num_return_sequences=n,
            eos_token_id=stop_ids,
            pad_token_id=tokenizer.pad_token_id,
        )
    prompt_len = encoded["input_ids"].shape[1]
    texts = tokenizer.batch_decode(output[:, prompt_len:], skip_special_tokens=True)
    if stop:
        texts = [_cut_at_stop(t, stop) for t in texts]
    return [t.strip("\n") for t in texts]


def _cut_at_stop(text: str, stop: list[str]) -> str:
    cut = min((text.find(s) for s in stop if s and s in text), default=-1)
    return text[:cut] if cut >= 0 else text
