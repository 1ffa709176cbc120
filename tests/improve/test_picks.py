"""Prompts come from the training split only; picks become targets only when the owner kept
them; redacted text is never a target; bad picks are refused and write nothing."""

from __future__ import annotations

import json
import sqlite3

import pytest

from selftune.errors import SelftuneError
from selftune.guards import OutputGuard
from selftune.improve.prompts import file_prompts, training_prompts
from selftune.picks import build_picks, split_held_out, untagged
from selftune.store.samples import SampleLog
from selftune.twin import Twin

TWIN = Twin(("Mags",), "You are {owner}.", False)


def test_prompts_come_only_from_the_training_split(improve_ws):
    dataset = improve_ws.artefacts.dataset("d1")
    prompts = training_prompts(dataset.read_split("train"), 50)
    held_out = {m["content"] for r in dataset.read_split("valid") for m in r["messages"]}
    shown = [p.shown() for p in prompts]
    assert prompts and not held_out & set(shown)
    assert {p.kind for p in prompts} == {"chat", "text"}
    assert all(p.messages[-1]["role"] == "user" for p in prompts if p.kind == "chat")
    # a list the owner started is a prompt ending on its first item's marker
    assert any(p.kind == "text" and p.text.endswith("- ") for p in prompts)
    real = {p.real for p in prompts if p.kind == "chat"}
    assert real <= {
        m["content"] for r in dataset.read_split("train") if "messages" in r for m in r["messages"]
    }


def test_prompt_files_are_checked_with_file_and_line(tmp_path):
    good = tmp_path / "p.jsonl"
    good.write_text(
        '{"prompt": "Here is a list of ideas for my next tattoo: 1."}\n'
        '{"messages": [{"role": "user", "content": "coming sunday?"}]}\n'
    )
    text, chat = file_prompts(good, TWIN)
    assert text.kind == "text" and chat.messages[0] == {
        "role": "system",
        "content": "You are Mags.",
    }
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"prompt": "ok"}\n{"messages": [{"role": "robot", "content": "x"}]}\n')
    with pytest.raises(SelftuneError, match=r"bad.jsonl:2: message 0 needs a role"):
        file_prompts(bad, TWIN)
    lines = tmp_path / "p.txt"
    lines.write_text("Dear diary,\n\nHere is a list: 1.\n")
    assert [p.text for p in file_prompts(lines, TWIN)] == ["Dear diary,", "Here is a list: 1."]


def _sample(i, candidates, picked=None, edited=None, ratings=(), flags=()):
    return {
        "id": i,
        "prompt": {"messages": [{"role": "user", "content": f"hi {i}"}]},
        "params": {},
        "candidates": list(candidates),
        "picked": picked,
        "edited": edited,
        "flags": list(flags),
        "ratings": [{"candidate": c, "rating": r} for c, r in ratings],
    }


def test_only_kept_text_is_a_target_and_redacted_text_never_is():
    guard = OutputGuard(["Harbour Cottage"])
    samples = [
        _sample(1, ["#[[twin says]] mine x", "Formal."], picked=0),
        _sample(2, ["a", "b"], picked=1, edited="b, but better x"),
        _sample(3, ["call me on [redacted]", "ok"], picked=0),  # guard redacted the kept one
        _sample(4, ["up", "down"], ratings=[(0, 1), (1, -1)]),  # thumbs, no pick
        _sample(5, ["x", "y"]),  # never reviewed: nothing from it
        _sample(6, ["at Harbour Cottage", "no"], ratings=[(0, 1)]),  # private fact
    ]
    picks = build_picks(samples, TWIN, ["#[[twin says]] "], guard)
    assert [k.text for k in picks.kept] == ["mine x", "b, but better x"]
    assert picks.kept[1].edited
    pairs = {(p.chosen, p.rejected) for p in picks.pairs}
    assert pairs == {
        ("mine x", "Formal."),
        ("b, but better x", "b"),
        ("b, but better x", "a"),
        ("up", "down"),
    }
    targets = [k.text for k in picks.kept] + [p.chosen for p in picks.pairs]
    targets += [t.text for t in picks.thumbs if t.desirable]
    assert not any("redacted" in t or "Harbour" in t or t == "x" for t in targets)
    assert picks.left_out == {
        "kept text redacted by the guard": 1,
        "rated text redacted by the guard": 1,
    }
    assert untagged("#[[twin says]]hello", ["#[[twin says]] "]) == "hello"


def test_the_most_recent_picks_are_held_out():
    samples = [_sample(i, ["a", "b"], picked=0) for i in range(1, 11)]
    train, held = split_held_out(list(reversed(samples)), 0.2)
    assert [s["id"] for s in held] == [9, 10] and len(train) == 8


def test_bad_picks_are_refused_and_nothing_is_written(tmp_path):
    from selftune.store import Store

    path = tmp_path / "store.sqlite"
    Store(path).close()
    log = SampleLog(path)
    sid = log.add("amplify", "twin", {"text": "Dear diary,"}, {}, ["one", "two"])
    with pytest.raises(SelftuneError, match=r"no sample 99"):
        log.pick(99, 0)
    with pytest.raises(SelftuneError, match=r"no candidate 2; its candidates are numbered 0 to 1"):
        log.pick(sid, 2)
    with pytest.raises(SelftuneError, match="no candidate 5"):
        log.rate(sid, 5, 1)
    with pytest.raises(SelftuneError, match="edited text .* is empty"):
        log.pick(sid, 0, "   ")
    db = sqlite3.connect(path)
    assert db.execute("SELECT picked, edited FROM samples").fetchall() == [(None, None)]
    assert db.execute("SELECT count(*) FROM ratings").fetchone()[0] == 0
    assert [s["id"] for s in log.waiting()] == [sid]
    log.reject_all(sid)
    assert log.waiting() == [] and log.review_counts()["ratings"] == 2
    assert json.loads(db.execute("SELECT candidates FROM samples").fetchone()[0]) == ["one", "two"]


def test_prompts_logged_by_every_endpoint_are_rebuilt():
    from selftune.picks import stored_prompt

    def rebuilt(prompt, params=None):
        return stored_prompt({"prompt": prompt, "params": params or {}}, TWIN)

    reply = rebuilt([{"author": "Tobias", "text": "sunday?"}, {"author": "Mags", "text": "yes"}])
    assert [m["role"] for m in reply.messages] == ["system", "user", "assistant"]
    chat = rebuilt([{"role": "system", "content": "S"}, {"role": "user", "content": "hi"}])
    assert chat.kind == "chat" and chat.messages[0]["content"] == "S"
    assert rebuilt("are you coming?", {"chat": True}).messages[-1] == {
        "role": "user",
        "content": "are you coming?",
    }
    assert rebuilt("Dear diary,").kind == "text"
    assert rebuilt({"text": "Here is a list: 1."}).text == "Here is a list: 1."
    assert rebuilt(42) is None


def test_the_fixture_held_out_picks_share_no_text_with_training(improve_ws):
    """The ranker is measured on texts it was not trained on (no held-out candidate is a
    training candidate word for word)."""
    from selftune.picks import reviewed_picks, tags_of
    from selftune.store.samples import SampleLog
    from selftune.twin import Twin
    from selftune.use import guard_for

    from .conftest import add_picks

    add_picks(improve_ws, 40)
    train, held = reviewed_picks(
        SampleLog(improve_ws.store_path),
        Twin.from_config(improve_ws.config),
        tags_of(improve_ws.config),
        guard_for(improve_ws, training=True),
        improve_ws.config.improve.held_out,
    )
    seen = {t for p in train.pairs for t in (p.chosen, p.rejected)}
    held_texts = {t for p in held.pairs for t in (p.chosen, p.rejected)}
    assert held.pairs and train.pairs
    assert not seen & held_texts
