"""The context-fit judge with stand-in judges whose answers are known."""

from __future__ import annotations

from selftune.evaluation.judge import last_message, score_replies


class Scorer:
    """An endpoint-like judge answering a fixed text."""

    def __init__(self, answer: str):
        self.answer = answer

    def chat(self, messages, n=1, temperature=0.8, max_tokens=48, seed=0):
        return [self.answer]


def test_endpoint_scores_map_to_zero_one():
    pairs = [("how are the bees?", "grumpy")] * 3
    assert score_replies(Scorer("5"), pairs, "x") == {"scored": 3, "mean": 1.0}
    assert score_replies(Scorer("Score: 3"), pairs, "x")["mean"] == 0.5
    assert score_replies(Scorer("no idea"), pairs, "x") == {"scored": 0, "mean": None}


def test_empty_messages_are_not_scored():
    assert score_replies(Scorer("4"), [("", "hello")], "x")["scored"] == 0


def test_last_message_is_the_last_user_turn():
    ctx = [
        {"role": "system", "content": "s"},
        {"role": "user", "content": "a"},
        {"role": "assistant", "content": "b"},
        {"role": "user", "content": "c"},
    ]
    assert last_message(ctx) == "c"
