"""Planting canaries and ranking them (exposure) with a scoring function whose answer is known."""

from __future__ import annotations

import math

import pytest

from selftune.dataset.canaries import plant_canaries, read_canaries, write_canaries
from selftune.dataset.examples import Example
from selftune.evaluation.leaks import canary_exposure, exposure

from .conftest import OTHERS, OWNER, chat


def examples() -> list[Example]:
    return [
        Example(chat(o, m), "whatsapp", f"c{i}", None)
        for i, (o, m) in enumerate(zip(OTHERS, OWNER, strict=True))
    ]


def test_plant_adds_k_canaries_each_repeated_and_is_repeatable(tmp_path):
    data = examples()
    planted = plant_canaries(data, 3, seed=1, repeats=2)
    assert len(data) == len(OWNER) + 6
    assert len({c["secret"] for c in planted}) == 3
    texts = [e.record["messages"][-1]["content"] for e in data[len(OWNER) :]]
    for c in planted:
        assert texts.count(f"{c['prefix']} {c['secret']}") == 2
    assert [c["secret"] for c in plant_canaries(examples(), 3, seed=1)] == [
        c["secret"] for c in planted
    ]
    write_canaries(tmp_path, planted)
    assert read_canaries(tmp_path) == planted
    assert read_canaries(tmp_path / "nowhere") == []


def test_exposure_formula():
    assert exposure(1, 1024) == 10
    assert exposure(1024, 1024) == 0
    assert exposure(2, 8) == pytest.approx(math.log2(8) - 1)


class FakeTokenizer:
    """Encodes each character; enough for encode_record's chat template path to be bypassed."""

    def apply_chat_template(self, messages, tokenize=False, add_generation_prompt=False):
        text = "".join(f"<{m['role']}>{m['content']}</>" for m in messages)
        return text + ("<assistant>" if add_generation_prompt else "")

    def encode(self, text, add_special_tokens=False):
        return [ord(c) for c in text]


def test_the_secret_a_model_prefers_ranks_first():
    canary = plant_canaries(examples(), 1, seed=2)[0]
    secret_codes = [ord(c) for c in canary["secret"]]

    def loves_the_secret(batch):
        # lower NLL when the labelled tokens end with the true secret
        out = []
        for item in batch:
            labels = [t for t in item["labels"] if t != -100]
            out.append(
                (0.0 if secret_codes == labels[-len(secret_codes) - 3 : -3] else 5.0, len(labels))
            )
        return out

    result = canary_exposure(loves_the_secret, FakeTokenizer(), canary, 64)
    assert result["rank"] == 1 and result["exposure"] == result["max_exposure"] == 6

    def hates_it(batch):
        return [(-x, n) for x, n in loves_the_secret(batch)]

    assert canary_exposure(hates_it, FakeTokenizer(), canary, 64)["rank"] == 64
