"""The authorship classifier on owners whose style is known."""

from __future__ import annotations

import pytest
from tests.evaluation.conftest import OTHERS, OWNER, SYSTEM, chat

from selftune.errors import SelftuneError
from selftune.scoring import authorship


def test_chat_messages_split_owner_and_others_and_drop_speaker_names():
    records = [
        chat("Juno: hello there\nTobias: and hi", "hiya x"),
        {"text": "a note is not a chat"},
    ]
    mine, others = authorship.chat_messages(records)
    assert mine == ["hiya x"]
    assert others == ["hello there", "and hi"]
    assert all(SYSTEM not in t for t in mine + others)


def test_classifier_tells_the_owner_from_others():
    model = authorship.fit(OWNER, OTHERS)
    held_mine = ["grand — see you at the harbour x", "ha, the bees are grumpy — i'll check sunday"]
    held_others = [
        "Dear Committee, Please Confirm The Date.",
        "Kind regards, and thank you for the minutes.",
    ]
    assert model.accuracy(held_mine, held_others) == 1
    like_owner = authorship.taken_for_owner(
        model, ["grand — see you at the harbour x", "ha, the bees are grumpy — i'll check sunday"]
    )
    like_others = authorship.taken_for_owner(
        model,
        [
            "Dear Committee, Please Confirm The Date.",
            "Kind regards, and thank you for the minutes.",
        ],
    )
    assert like_owner["taken_for_owner"] > like_others["taken_for_owner"]
    assert like_owner["mean_probability"] > 0.5 > like_others["mean_probability"]


def test_too_few_messages_is_a_clear_error():
    with pytest.raises(SelftuneError, match="at least 3"):
        authorship.fit(OWNER[:2], OTHERS)


def test_no_texts_gives_no_score():
    model = authorship.fit(OWNER, OTHERS)
    assert authorship.taken_for_owner(model, ["", " "])["taken_for_owner"] is None
    assert model.accuracy([], OTHERS) is None
