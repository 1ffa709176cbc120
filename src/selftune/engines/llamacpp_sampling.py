"""Per-sequence sampling for the llama.cpp engine: each candidate's own llama.cpp sampler chain
(logit bias, OpenAI's presence/frequency penalties, the response-format grammar, temperature,
top-p, a seeded draw), and the log-probabilities OpenAI's `logprobs` returns."""

from __future__ import annotations

from typing import Any

from selftune.engines.base import GenRequest
from selftune.engines.response_format import gbnf
from selftune.errors import SelftuneError


def response_grammar(response_format: dict[str, Any] | None) -> str | None:
    """The GBNF grammar for an OpenAI `response_format` (None for plain text)."""
    return gbnf(response_format)


def token_bytes(tokenizer: Any, token: int) -> bytes:
    """The bytes a token stands for (the transformers engine's definition when it has one)."""
    try:
        from selftune.engines.transformers_engine import token_bytes as shared
    except ImportError:
        return tokenizer.decode([token]).encode("utf-8")
    return shared(tokenizer, token)


def sampler_chain(lib: Any, vocab: Any, n_vocab: int, request: GenRequest, seed: int) -> Any:
    """The request's own chain: logit bias and OpenAI's presence/frequency penalties on the
    raw logits, the response-format grammar, then temperature, top-p on the tempered
    distribution (the order transformers uses) and a draw from this candidate's own RNG."""
    chain = lib.llama_sampler_chain_init(lib.llama_sampler_chain_default_params())

    def add(sampler: Any, what: str) -> None:
        if not sampler:
            lib.llama_sampler_free(chain)
            raise SelftuneError(f"llama.cpp refused the request's {what}")
        lib.llama_sampler_chain_add(chain, sampler)

    bias = getattr(request, "logit_bias", None) or {}
    if bias:
        items = (lib.llama_logit_bias * len(bias))(
            *(lib.llama_logit_bias(int(t), float(b)) for t, b in bias.items())
        )
        add(lib.llama_sampler_init_logit_bias(n_vocab, len(bias), items), "logit_bias")
    presence = getattr(request, "presence_penalty", 0.0) or 0.0
    frequency = getattr(request, "frequency_penalty", 0.0) or 0.0
    if presence or frequency:  # over every generated token (the chain never sees the prompt)
        window = max(request.max_tokens, 1)
        penalties = lib.llama_sampler_init_penalties(n_vocab, window, 1.0, frequency, presence)
        add(penalties, "penalties")
    grammar = response_grammar(getattr(request, "response_format", None))
    if grammar:
        add(lib.llama_sampler_init_grammar(vocab, grammar.encode(), b"root"), "grammar")
    if request.temperature == 0:
        add(lib.llama_sampler_init_greedy(), "sampling")
        return chain
    add(lib.llama_sampler_init_temp(request.temperature), "temperature")
    if request.top_p < 1:
        add(lib.llama_sampler_init_top_p(request.top_p, 1), "top_p")
    add(lib.llama_sampler_init_dist(seed & 0xFFFFFFFF), "seed")
    return chain


def logprob(
    lib: Any, ctx: Any, n_vocab: int, tokenizer: Any, row: int, token: int, top: int
) -> Any:
    """The chosen token's log-probability under the model (raw logits), and the `top`
    likeliest alternatives."""
    import numpy as np

    from selftune.engines.base import TokenLogprob  # type: ignore[attr-defined]

    logits = np.ctypeslib.as_array(lib.llama_get_logits_ith(ctx, row), (n_vocab,))
    peak = float(logits.max())
    logz = peak + float(np.log(np.exp(logits - peak).sum()))
    entry = _entry(tokenizer, token, float(logits[token]) - logz, TokenLogprob)
    if top:
        best = np.argpartition(-logits, top)[:top]
        best = best[np.argsort(-logits[best])]
        entry.top = [_entry(tokenizer, int(t), float(logits[t]) - logz, TokenLogprob) for t in best]
    return entry


def _entry(tokenizer: Any, token: int, logprob: float, kind: Any) -> Any:
    raw = token_bytes(tokenizer, token)
    return kind(raw.decode("utf-8", errors="replace"), logprob, list(raw))
