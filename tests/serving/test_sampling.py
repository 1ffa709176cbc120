"""The transformers engine's per-row sampler: seeds that hold whatever shares the batch, OpenAI's
penalties and logit bias, and the model's log-probabilities."""

from __future__ import annotations

import math

from selftune.engines.base import GenRequest, unsupported


def test_a_seeded_request_gives_the_same_text_whatever_runs_beside_it(tiny_engine):
    request = GenRequest("Dear diary,", 2, 1.0, 0.95, 10, seed=7)
    alone = tiny_engine.generate([request])[0].texts
    beside = tiny_engine.generate(
        [
            GenRequest("A much longer prompt that pads the batch differently", 3, 0.7, 0.9, 12),
            GenRequest("Dear diary,", 2, 1.0, 0.95, 10, seed=7),
            GenRequest("x", 1, 0, 1, 4),
            GenRequest("Dear diary,", 1, 1.0, 0.95, 10, seed=99),
        ]
    )
    assert beside[1].texts == alone
    assert beside[3].texts[0] != alone[0]  # another seed, another text
    # candidate c is seeded seed + c: the second candidate of seed 7 is the first of seed 8
    assert (
        tiny_engine.generate([GenRequest("Dear diary,", 1, 1.0, 0.95, 10, seed=8)])[0].texts[0]
        == alone[1]
    )


def test_logit_bias_forces_a_token(tiny_engine):
    tok = tiny_engine.tokenizer
    target = tok(" kettle", add_special_tokens=False)["input_ids"][0]
    out = tiny_engine.generate(
        [GenRequest("hello", 1, 0.9, 1, 5, seed=1, logit_bias={target: 100})]
    )
    assert out[0].texts[0] == tok.decode([target]) * 5


def test_presence_and_frequency_penalties_as_openai_defines_them(tiny_engine):
    tok = tiny_engine.tokenizer
    target = tok(" kettle", add_special_tokens=False)["input_ids"][0]
    bias = {target: 20.0}  # far above the tiny model's other logits (a few units apart)

    def count(**penalty: float) -> int:
        request = GenRequest("hello", 1, 0, 1, 6, logit_bias=bias, **penalty)
        return tiny_engine.generate([request])[0].texts[0].count(" kettle")

    assert count() == 6
    assert count(presence_penalty=2.0) == 6  # 20 - 2 still wins
    # frequency: 20, 12, 4 win; 20 - 3 * 8 = -4 loses
    assert count(frequency_penalty=8.0) == 3
    assert count(presence_penalty=6.0, frequency_penalty=8.0) == 2  # 20, 6 win; -2 loses


def test_logprobs_are_the_models_and_match_the_tokens(tiny_engine):
    request = GenRequest("Once upon", 1, 0, 1, 6, logprobs=True, top_logprobs=3)
    result = tiny_engine.generate([request])[0]
    entries = result.logprobs[0]
    assert len(entries) == result.completion_tokens[0]
    assert "".join(e.token for e in entries) == result.texts[0]
    for e in entries:
        assert e.logprob <= 0
        assert len(e.top) == 3
        assert [t.logprob for t in e.top] == sorted((t.logprob for t in e.top), reverse=True)
        assert e.top[0].token == e.token and math.isclose(e.top[0].logprob, e.logprob)
        assert bytes(e.bytes).decode() == e.token
    plain = tiny_engine.generate([GenRequest("Once upon", 1, 0, 1, 6)])[0]
    assert plain.logprobs is None and plain.texts == result.texts


def test_logprobs_stop_where_a_stop_string_cuts_the_text(tiny_engine):
    full = tiny_engine.generate([GenRequest("a", 1, 0, 1, 12, logprobs=True)])[0]
    text = full.texts[0]
    stop = text[len(text) // 2 : len(text) // 2 + 2]
    cut = tiny_engine.generate([GenRequest("a", 1, 0, 1, 12, stop=[stop], logprobs=True)])[0]
    kept = "".join(e.token for e in cut.logprobs[0])
    assert cut.texts[0].startswith(kept) and len(kept) <= len(cut.texts[0])


def test_engines_name_what_they_cannot_honour(tiny_engine):
    request = GenRequest("x", logprobs=True, response_format={"type": "json_object"})
    assert unsupported(tiny_engine, request) == []  # both engines honour JSON output

    class LogprobsOnly:
        supports = frozenset({"logprobs"})

    assert unsupported(LogprobsOnly(), request) == ["response_format"]
    assert unsupported(object(), GenRequest("x", response_format={"type": "text"})) == []
