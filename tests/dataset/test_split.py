"""The validation split: a minimum held-out size in tokens from the most recent material, notes
dated by what they say (never the file's modification time), long held-out notes cut on block
boundaries, and a card that says how the split was made and warns when it is too small."""

from __future__ import annotations

from datetime import UTC, datetime

from selftune.config import BuildConfig
from selftune.dataset.examples import build_dataset
from selftune.dataset.split import note_date, title_date
from selftune.dataset.writer import card, card_markdown
from selftune.records import Note

from .conftest import chat, make_store, words

CHECKOUT = datetime(2026, 12, 1, 6, 55, tzinfo=UTC)  # what a fresh clone sets every mtime to


def _tokens(examples):
    return sum(e.tokens for e in examples)


def test_the_held_out_set_has_a_minimum_size_in_tokens(tmp_path):
    store = make_store(tmp_path / "s.sqlite", chat(24 * 60, 60))
    total = _tokens(build_dataset(store, BuildConfig(valid_fraction=0.15), "Mags", words).train)
    by_fraction = build_dataset(
        store, BuildConfig(valid_fraction=0.15, min_valid_tokens=0), "Mags", words
    )
    with_minimum = build_dataset(
        store, BuildConfig(valid_fraction=0.15, min_valid_tokens=800), "Mags", words
    )
    all_tokens = _tokens(by_fraction.train) + _tokens(by_fraction.valid)
    assert total < all_tokens  # something was held out at all
    assert 0.15 * all_tokens <= _tokens(by_fraction.valid) < 800
    assert 800 <= _tokens(with_minimum.valid) <= 0.4 * all_tokens
    # the most recent sessions are the held-out ones
    assert max(e.start for e in with_minimum.train) < min(e.start for e in with_minimum.valid)
    assert not with_minimum.split["warnings"]


def test_the_held_out_set_never_exceeds_its_cap_and_the_card_warns_when_small(tmp_path):
    store = make_store(tmp_path / "s.sqlite", chat(24 * 60, 6))
    config = BuildConfig(min_valid_tokens=10_000, max_valid_share=0.4)
    data = build_dataset(store, config, "Mags", words)
    held, total = _tokens(data.valid), _tokens(data.valid) + _tokens(data.train)
    assert 0 < held <= 0.4 * total
    info = card(data, config, "words")
    assert info["split"]["by_source"]["whatsapp"]["valid_tokens"] == held
    text = card_markdown(info)
    assert "How the split was made" in text and "**Warning:**" in text and "noise" in text


def _note(title, text, path, **kw):
    return Note(source=kw.pop("source", "markdown"), title=title, path=path, text=text, **kw)


def test_notes_are_dated_by_what_they_say_never_by_the_checkout_time():
    created = datetime(2024, 5, 2, tzinfo=UTC)
    assert note_date(_note("a", "x", "a.md", created=created, modified=CHECKOUT)) == (
        created,
        "created",
    )
    when, how = note_date(_note("b", "x", "b.md", metadata={"updated": "2023-01-09"}))
    assert how == "front matter" and when.year == 2023
    assert note_date(_note("2024-03-01", "x", "daily/2024-03-01.md", modified=CHECKOUT))[1] == (
        "title"
    )
    assert title_date("March 3rd, 2021") == datetime(2021, 3, 3, tzinfo=UTC)
    # a Markdown file's mtime is the checkout's; a Roam export's edit time is the owner's
    assert note_date(_note("c", "x", "c.md", modified=CHECKOUT)) == (None, "file order")
    roam = _note("c", "x", "c", source="roam", modified=datetime(2022, 2, 2, tzinfo=UTC))
    assert note_date(roam)[1] == "modified"


def _long_note(i: int, blocks: int = 12) -> str:
    items = "\n".join(
        f"- block {b} of note {i}: " + " ".join(f"w{i}x{b}y{k}" for k in range(18))
        for b in range(blocks)
    )
    return f"# note {i}\n\n{items}"


def test_undated_notes_split_by_file_order_and_long_held_out_notes_are_cut_on_blocks(tmp_path):
    notes = [_note(f"note {i}", _long_note(i), f"{i:02d}.md", modified=CHECKOUT) for i in range(6)]
    store = make_store(tmp_path / "s.sqlite", [], notes)
    config = BuildConfig(min_valid_tokens=300, valid_note_chunk_tokens=80)
    data = build_dataset(store, config, "Mags", words)
    held_notes = {e.conversation for e in data.valid}
    # the last notes in file order are held out, whatever their (identical) mtime says
    ids = [n.id for n in notes]
    assert held_notes == set(ids[-len(held_notes) :])
    assert all(e.start is None and e.dated_by == "file order" for e in data.valid)
    assert len(data.valid) >= 4  # several held-out examples from one or two notes
    originals = {n.id: n.text.split("\n") for n in notes}
    for e in data.valid:
        assert e.tokens <= 80
        lines = [line for line in e.record["text"].split("\n") if line.strip()]
        assert lines[0].startswith("# note")  # the title comes first
        assert all(line in originals[e.conversation] for line in lines)  # whole blocks only
    assert any("without a date" in w for w in data.split["warnings"])
