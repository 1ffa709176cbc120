"""The engines' incremental detokenizer gives, token by token, exactly what one decode of all the
tokens gives: multi-byte characters split over tokens, special tokens, leading spaces."""

from __future__ import annotations

import random

import pytest

from selftune.engines.base import Detokenizer

TEXTS = [
    "Héllo wörld, ça va? 🐝🌻 naïve café — “quotes” …",
    "<|im_start|>assistant\nsure 🙂 see you at 10:30<|im_end|>",
    "  leading spaces\n\nand\ttabs 日本語のテキスト",
]


@pytest.fixture(scope="module")
def tokenizer(tokenizer_dir):  # type: ignore[no-untyped-def]
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(tokenizer_dir)


@pytest.mark.parametrize("text", TEXTS)
def test_pieces_add_up_to_one_decode(tokenizer, text):
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    detok = Detokenizer(tokenizer)
    pieces = [detok.add(t) for t in ids] + [detok.flush()]
    whole = tokenizer.decode(ids, skip_special_tokens=True)
    assert "".join(pieces) == detok.text == whole
    assert not any("\ufffd" in p for p in pieces)  # no half character ever goes out


def test_random_tokens_too(tokenizer):
    rng = random.Random(0)
    for _ in range(20):
        ids = [rng.randrange(len(tokenizer)) for _ in range(rng.randint(1, 40))]
        detok = Detokenizer(tokenizer)
        text = "".join(detok.add(t) for t in ids) + detok.flush()
        assert text == tokenizer.decode(ids, skip_special_tokens=True)
