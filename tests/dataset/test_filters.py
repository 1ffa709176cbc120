"""Duplicate and language filters."""

from __future__ import annotations

import pytest

from selftune.dataset.filters import find_duplicates

LONG = "the queen cells on frame six were charged so i did an artificial swarm this morning"


def test_exact_copies_up_to_case_and_spacing_are_duplicates():
    whole = ["Hello  there!", "hello there!", "hello where!"]
    assert find_duplicates(whole, whole, near=False, threshold=0.8) == [
        None,
        "duplicate (exact)",
        None,
    ]


def test_near_copies_of_long_targets_are_found_and_the_first_is_kept():
    texts = [LONG, LONG.replace("this morning", "this afternoon"), "something else entirely now ok"]
    whole = [f"context {i} {t}" for i, t in enumerate(texts)]
    assert find_duplicates(whole, texts, near=True, threshold=0.7) == [
        None,
        "duplicate (near)",
        None,
    ]
    assert find_duplicates(whole, texts, near=False, threshold=0.7) == [None, None, None]


def test_short_replies_repeat_naturally_and_are_not_near_duplicates():
    texts = ["ok see you then", "ok see you then"]
    whole = ["are you coming? ok see you then", "dinner at 8? ok see you then"]
    assert find_duplicates(whole, texts, near=True, threshold=0.5) == [None, None]


def test_language_filter_keeps_the_languages_asked_for():
    pytest.importorskip("py3langid")
    from selftune.dataset.filters import language_filter

    keep = language_filter(["en"])
    assert keep("the bees are bringing in orange pollen from the gorse on the cliffs") is None
    assert (
        keep("die Bienen bringen heute sehr viel orangefarbenen Pollen vom Ginster nach Hause")
        == "other language"
    )
    assert keep("ja") is None  # too short to tell
