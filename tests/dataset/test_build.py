"""The whole build: targets only from the owner, no leakage across the split, scrubbed files,
a card that matches the files, and byte-identical output for the same store and settings."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from selftune.artefacts import read_split
from selftune.config import BuildConfig
from selftune.dataset.examples import build_dataset
from selftune.dataset.filters import shingles
from selftune.dataset.writer import card, write_dataset
from selftune.errors import SelftuneError
from selftune.records import Note

from .conftest import chat, make_store, msg, words


def build(store, config=None, owner="Mags"):
    return build_dataset(store, config or BuildConfig(probe_per_source=2), owner, words)


def write(data, folder: Path, config=None) -> dict:
    folder.mkdir(parents=True, exist_ok=True)
    return write_dataset(data, folder, card(data, config or BuildConfig(), "words"))


def assistant_texts(records):
    return [
        m["content"] for r in records for m in r.get("messages", []) if m["role"] == "assistant"
    ]


def test_targets_come_only_from_the_owners_messages(tmp_path):
    messages = chat(24 * 60, 6) + chat(
        24 * 60, 3, conversation="whatsapp:club", title="Club", conversation_kind="group"
    )
    messages.append(msg("Priya", "Priya writes this herself", 5, "whatsapp:club", "Club"))
    store = make_store(tmp_path / "s.sqlite", messages)
    data = build(store)
    mine = {m.text for m in messages if m.is_me}
    for e in data.train + data.valid:
        for m in e.record["messages"]:
            if m["role"] == "assistant":
                assert all(line in mine for line in m["content"].split("\n"))
    assert data.train[0].record["messages"][0]["role"] == "system"


def test_no_session_and_no_near_duplicate_crosses_the_split(tmp_path):
    long = "i moved the old queen to the new box on the left and closed it all up for the night"
    messages = chat(24 * 60, 20)
    messages += [
        msg("Tobias", "what did you do?", 3 * 24 * 60 + 300),
        msg("Mags", long, 3 * 24 * 60 + 301),
    ]
    messages += [
        msg("Tobias", "and today?", 19 * 24 * 60 + 300),
        msg("Mags", long + "!", 19 * 24 * 60 + 301),
    ]
    data = build(make_store(tmp_path / "s.sqlite", messages))
    train_sessions = {e.session for e in data.train}
    valid_sessions = {e.session for e in data.valid}
    assert valid_sessions and not train_sessions & valid_sessions
    assert max(e.start for e in data.train) < min(e.start for e in data.valid)
    train_sets = [shingles(e.targets) for e in data.train]
    for e in data.valid:
        s = shingles(e.targets)
        assert all(not s or len(s & t) / len(s | t) < 0.8 for t in train_sets)
    assert data.filtered["duplicate (near)"] == 1


def test_conversation_split_holds_out_whole_conversations(tmp_path):
    messages = []
    for c in range(5):
        messages += chat(24 * 60, 3, conversation=f"whatsapp:c{c}")
    data = build(make_store(tmp_path / "s.sqlite", messages), BuildConfig(split="conversation"))
    assert data.valid
    assert not {e.conversation for e in data.train} & {e.conversation for e in data.valid}


def test_excluded_contacts_conversations_are_left_out_entirely(tmp_path):
    messages = chat(24 * 60, 3) + chat(24 * 60, 3, conversation="whatsapp:ana", title="Ana")
    for m in messages[-12:]:
        if not m.is_me:
            m.author = "Ana"
    store = make_store(tmp_path / "s.sqlite", messages)
    store.set_person("Ana", excluded=True)
    data = build(store)
    assert all(e.conversation != "whatsapp:ana" for e in data.train + data.valid)
    assert data.filtered["conversation with an excluded contact"] == 1


def test_no_scrubbed_value_or_private_fact_survives_into_the_files(tmp_path):
    secrets = {
        "email": "tobias.m@example.com",
        "phone": "+44 7700 900123",
        "iban": "GB82 WEST 1234 5698 7654 32",
        "card": "4111 1111 1111 1111",
        "url": "https://example.org/reset?token=s3cr3t",
        "fact": "Doris Lane",
    }
    messages = chat(24 * 60, 8)
    messages += [
        msg("Tobias", f"my new email is {secrets['email']}", 10),
        msg("Mags", f"grand, mine is still {secrets['phone']} — at doris lane", 11),
        msg("Mags", f"pay {secrets['iban']} or card {secrets['card']}", 12),
        msg("Mags", f"reset link {secrets['url']} x", 13),
    ]
    note = Note("markdown", "Passwords", "p.md", f"- bank\n  - {secrets['card']}\n- Doris Lane")
    store = make_store(tmp_path / "s.sqlite", messages, [note])
    config = BuildConfig(private_facts=["doris lane"])
    data = build(store, config)
    info = write(data, tmp_path / "out", config)
    text = "".join(p.read_text() for p in (tmp_path / "out").iterdir())
    for value in secrets.values():
        assert value.lower() not in text.lower()
    assert "7700" not in text and "1111 1111" not in text
    assert info["pii"]["card"]["occurrences"] == 2 and info["pii"]["card"]["values"] == 1
    assert info["pii"]["private_fact"]["occurrences"] == 2
    assert "doris" not in json.dumps(info["settings"]).lower()


def test_private_facts_with_other_whitespace_or_across_merged_messages_stay_out(tmp_path):
    messages = chat(24 * 60, 8)
    messages += [
        msg("Mags", "my locker  code is 739204", 10),  # double space
        msg("Tobias", "ok", 11),
        msg("Mags", "my locker\u00a0code is 739204", 12),  # no-break space
        msg("Tobias", "and the other one?", 13),
        msg("Mags", "my locker code is", 14),  # two messages, merged into one turn
        msg("Mags", "739204", 14.5),
    ]
    store = make_store(tmp_path / "s.sqlite", messages)
    config = BuildConfig(private_facts=["My locker code is 739204"])
    info = write(build(store, config), tmp_path / "out", config)
    text = "".join(p.read_text() for p in (tmp_path / "out").iterdir())
    assert "739204" not in text
    assert info["pii"]["private_fact"]["occurrences"] == 3


def test_a_private_fact_that_slips_in_stops_the_write(tmp_path):
    store = make_store(tmp_path / "s.sqlite", chat(24 * 60, 3))
    config = BuildConfig(private_facts=["grand"])
    data = build(store, config)
    data.train[0].record["messages"][-1]["content"] += " grand"  # as a buggy extension might
    with pytest.raises(SelftuneError, match="private fact"):
        write(data, tmp_path / "out", config)
    assert not (tmp_path / "out" / "train.jsonl").exists()


def test_pseudonyms_replace_other_peoples_names(tmp_path):
    messages = chat(
        24 * 60, 2, conversation="whatsapp:club", title="Club", conversation_kind="group"
    )
    messages.append(
        msg("Priya", "hello all", 2, "whatsapp:club", "Club", conversation_kind="group")
    )
    data = build(
        make_store(tmp_path / "s.sqlite", messages), BuildConfig(speaker_names="pseudonyms")
    )
    text = json.dumps([e.record for e in data.train + data.valid])
    assert "Tobias" not in text and "Priya" not in text and "Person 1: " in text


def test_weights_and_caps_trim_training_sources(tmp_path):
    messages = chat(24 * 60, 20) + chat(
        24 * 60, 20, conversation="telegram:t", source="telegram", title="T"
    )
    store = make_store(tmp_path / "s.sqlite", messages)
    capped = build(store, BuildConfig(max_examples_per_source=5))
    assert all(v <= 5 for v in _by_source(capped.train).values())
    weighted = build(store, BuildConfig(source_weights={"whatsapp": 0.8, "telegram": 0.2}))
    tokens = {
        s: sum(e.tokens for e in weighted.train if e.source == s) for s in ("whatsapp", "telegram")
    }
    assert tokens["telegram"] / (tokens["whatsapp"] + tokens["telegram"]) == pytest.approx(
        0.2, abs=0.08
    )
    assert weighted.filtered["over the source's cap or weight"] > 0


def _by_source(examples):
    out: dict[str, int] = {}
    for e in examples:
        out[e.source] = out.get(e.source, 0) + 1
    return out


def test_date_and_platform_are_in_the_system_prompt(tmp_path):
    data = build(make_store(tmp_path / "s.sqlite", chat(24 * 60, 3)))
    system = data.train[0].record["messages"][0]["content"]
    assert "WhatsApp" in system and "March 2024" in system and "Mags" in system
    quiet = build(
        make_store(tmp_path / "q.sqlite", chat(24 * 60, 3)), BuildConfig(prompt_date=False)
    )
    assert "2024" not in quiet.train[0].record["messages"][0]["content"]


def test_too_long_turns_are_left_out_and_others_long_turns_are_cut(tmp_path):
    messages = chat(24 * 60, 3)
    messages += [
        msg("Tobias", "word " * 500, 10),
        msg("Mags", "ok " * 500, 11),
        msg("Mags", "fine", 12),
    ]
    data = build(make_store(tmp_path / "s.sqlite", messages), BuildConfig(max_turn_tokens=100))
    assert data.filtered["too long"] == 1
    assert all(e.tokens <= BuildConfig().max_example_tokens for e in data.train + data.valid)


def test_the_example_card_matches_the_files_and_builds_are_byte_identical(
    example_workspace, tokenizer_dir
):
    from selftune.dataset import run_build

    ws = example_workspace
    ws.config.train.base = str(tokenizer_dir)
    info, first = run_build(ws)
    _, second = run_build(ws)
    a, b = ws.datasets_dir / first, ws.datasets_dir / second
    for name in (
        "train.jsonl",
        "valid.jsonl",
        "train.meta.jsonl",
        "valid.meta.jsonl",
        "dataset.json",
        "card.md",
    ):
        assert (a / name).read_bytes() == (b / name).read_bytes(), name
    check_card(a)
    assert info["train"]["by_source"].keys() == {"whatsapp", "notes:markdown"}
    assert info["filtered"]["system message"] >= 1 and info["probe"]["examples"] > 0
    dry, none = run_build(ws, dry_run=True)
    assert none is None and dry["content_hash"] == info["content_hash"]
    assert len(list(ws.datasets_dir.iterdir())) == 2


def test_examples_added_before_writing_are_in_the_files_and_the_card(
    example_workspace, tokenizer_dir
):
    from selftune.dataset import run_build
    from selftune.dataset.examples import Example

    ws = example_workspace
    ws.config.train.base = str(tokenizer_dir)
    extra = Example({"text": "# canary\n\nthe owl flies at 4417"}, "canary", "canary", None, 9)
    info, dataset_id = run_build(ws, prepare=lambda data: data.train.append(extra))
    check_card(ws.datasets_dir / dataset_id)
    assert info["train"]["by_source"]["canary"] == {"examples": 1, "tokens": 9}
    assert "the owl flies at 4417" in (ws.datasets_dir / dataset_id / "train.jsonl").read_text()


def check_card(folder: Path) -> dict:
    """The card's counts agree with the files; every record has the right shape."""
    info = json.loads((folder / "dataset.json").read_text())
    for split in ("train", "valid"):
        records = read_split(folder, split)
        assert info[split]["examples"] == len(records)
        assert info[split]["tokens"] == sum(r["_meta"]["tokens"] for r in records)
        by_source: dict[str, int] = {}
        for r in records:
            by_source[r["_meta"]["source"]] = by_source.get(r["_meta"]["source"], 0) + 1
            if "messages" in r:
                roles = [m["role"] for m in r["messages"]]
                assert roles[0] == "system" and roles[-1] == "assistant"
                rest = roles[1:]
                assert all(x != y for x, y in zip(rest, rest[1:], strict=False)), roles
                assert set(rest) <= {"user", "assistant"}
            else:
                assert r["text"].startswith("# ")
        assert {s: row["examples"] for s, row in info[split]["by_source"].items()} == by_source
    probes = sum(r["_meta"]["probe"] for r in read_split(folder, "valid"))
    assert probes == info["probe"]["examples"]
    return info
