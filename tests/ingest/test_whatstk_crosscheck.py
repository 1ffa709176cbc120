"""Cross-check against a peer: whatstk writes the same chat in each of its 96 header formats,
and selftune and whatstk must agree on message count, authors, times and text."""

from __future__ import annotations

import random
from datetime import datetime, timedelta

import pytest

whatstk = pytest.importorskip("whatstk")
pd = pytest.importorskip("pandas")

from whatstk.whatsapp.hformat import get_supported_hformats_as_list  # noqa: E402
from whatstk.whatsapp.objects import WhatsAppChat  # noqa: E402

from .conftest import parse  # noqa: E402

AUTHORS = ["John", "Mary", "Giuseppe", "+1 123 456 789", "Zoë Łukasz"]
WORDS = [
    "lorem",
    "ipsum",
    "dolor",
    "sit",
    "amet,",
    "consectetur",
    "adipiscing",
    "elit!",
    "🎉",
    "ça",
    "va?",
    "12:30",
    "ok:",
    "yes",
]


def generated_chat(size: int = 120, seed: int = 7) -> pd.DataFrame:
    """A chat over about four months: multi-line messages, colons in text, emoji, accents."""
    rng = random.Random(seed)
    when = datetime(2023, 1, 28, 8, 0)
    rows = []
    for _ in range(size):
        when += timedelta(minutes=rng.randint(1, 2000))
        lines = [
            " ".join(rng.choices(WORDS, k=rng.randint(1, 8)))
            for _ in range(rng.choice([1, 1, 1, 2, 3]))
        ]
        rows.append({"date": when, "username": rng.choice(AUTHORS), "message": "\n".join(lines)})
    return pd.DataFrame(rows)


HFORMATS = get_supported_hformats_as_list()


@pytest.mark.parametrize("hformat", HFORMATS)
def test_agrees_with_whatstk(tmp_path, hformat):
    chat = WhatsAppChat(generated_chat())
    path = tmp_path / "WhatsApp Chat with Generated.txt"
    chat.to_txt(str(path), hformat=hformat)
    theirs = WhatsAppChat.from_source(str(path), hformat=hformat).df
    ours, ctx = parse(path, fmt="whatsapp")
    assert not ctx.skipped
    assert len(ours) == len(theirs)
    assert [m.author for m in ours] == list(theirs["username"])
    assert [m.text for m in ours] == list(theirs["message"])
    assert [m.timestamp.replace(tzinfo=None) for m in ours] == [
        t.to_pydatetime() for t in theirs["date"]
    ]


def test_every_format_is_covered():
    assert len(HFORMATS) >= 90
