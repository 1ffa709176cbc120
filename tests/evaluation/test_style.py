"""Style statistics and distance on sets whose right answer is known."""

from __future__ import annotations

import pytest

from selftune.evaluation import style

from .conftest import OTHERS, OWNER


def test_identical_replies_are_at_distance_zero():
    d = style.distance(OWNER, OWNER, OWNER)
    assert d["distance"] == 0
    assert d["vocab_overlap"] == 1


def test_owner_like_replies_are_closer_than_formal_ones():
    owner_like = [
        "grand — see you sunday x",
        "ha, the bees are fine — bit grumpy",
        "i'll bring the honey x",
    ]
    near = style.distance(owner_like, OWNER[:5], OWNER[5:])
    far = style.distance(OTHERS, OWNER[:5], OWNER[5:])
    assert near["distance"] < far["distance"]
    assert near["per_stat"]["starts_upper"] < far["per_stat"]["starts_upper"]


def test_profile_counts_simple_features():
    p = style.profile(["Hello there!", "ok 🐝🐝", "What? Really?"])
    assert p["replies"] == 3
    assert p["stats"]["emoji"] == pytest.approx(2 / 3, abs=1e-3)
    assert p["stats"]["questions"] == pytest.approx(2 / 3, abs=1e-3)
    assert p["stats"]["starts_upper"] == pytest.approx(2 / 3, abs=1e-3)
    assert p["stats"]["words"] == pytest.approx(5 / 3, abs=1e-3)


def test_language_is_detected_from_function_words():
    assert style.language("je ne sais pas ce que tu veux dire, la réunion est demain") == "fr"
    assert style.language("I think that the bees are in the hive and it is warm") == "en"
    assert style.language("ok") == "?"
    assert style.language("😂😂") == "?"


def test_short_chat_lines_get_a_language():
    # the function-word heuristic answered '?' for all of these: the statistic measured nothing
    lines = ["on my way, traffic is awful", "oui bien sûr", "ok see you at 8"]
    assert [style.language(t) for t in lines] == ["en", "fr", "en"]


def test_language_mismatch_counts():
    french = ["je ne sais pas, la ruche est calme et le miel est bon"] * 3
    english = ["i think the bees are fine and the honey is good for you"] * 3
    assert style.distance(french, english, english)["language_mismatch"] == 1
    assert style.distance(english, english, english)["language_mismatch"] == 0


def test_empty_generation_has_no_distance():
    assert style.distance(["", "  "], OWNER, OWNER)["distance"] is None
    assert style.closer({"distance": None}, {"distance": 1.0}) is None
    assert style.closer({"distance": 2.0}, {"distance": 1.0}) is True
