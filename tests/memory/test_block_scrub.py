"""The memory block is scrubbed like the turns, at training and at use: one PII definition for
texts and author names (WhatsApp writes an unsaved contact as a bare number), the build's
pseudonyms, and private facts matched in any case, whitespace or zero-width form."""

from __future__ import annotations

import stat
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from selftune.memory import Memory

NUMBER = "+44 7700 900123"
GROUP_LINES = [
    ("Ana", "who is bringing the honey cake on saturday?"),
    (NUMBER, "😂😂😂 the honey cake again"),
    ("Mags", "me, the honey cake is my job"),
    (NUMBER, "grand, bring the big one"),
    ("Ana", "and the lemonade?"),
    ("Mags", "lemonade too, and the honey"),
]


def group_export(path: Path, days: int = 12) -> Path:
    """A WhatsApp group export in which one member is an unsaved contact (a bare number)."""
    start = datetime(2024, 3, 1, 18, 0)
    lines = []
    for day in range(days):
        for i, (author, text) in enumerate(GROUP_LINES):
            when = start + timedelta(days=day, minutes=i)
            lines.append(f"{when:%d/%m/%Y, %H:%M} - {author}: day {day} {text}")
    path.mkdir(parents=True, exist_ok=True)
    out = path / "WhatsApp Chat with Cake Club.txt"
    out.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return out


@pytest.fixture
def group_workspace(tmp_path: Path, tokenizer_dir: Path):
    from selftune.ingest.importer import ingest_paths
    from selftune.memory import on_ingest
    from selftune.workspace import init_workspace

    ws = init_workspace(tmp_path / "twin", ["Mags"])
    ws.config.train.base = str(tokenizer_dir)
    ws.config.build.dedupe = "off"
    with ws.open_store() as store:
        ingest_paths(store, [group_export(tmp_path / "exports")], ("Mags",))
        on_ingest(store)
    return ws


def _dataset_text(ws, dataset_id: str) -> str:  # type: ignore[no-untyped-def]
    folder = ws.datasets_dir / dataset_id
    return "".join(p.read_text(encoding="utf-8") for p in folder.rglob("*") if p.is_file())


def test_a_bare_number_author_reaches_no_file_of_the_dataset(group_workspace):
    from selftune.dataset import run_build

    ws = group_workspace
    info, dataset_id = run_build(ws)
    text = _dataset_text(ws, dataset_id)
    assert "Memory:" in text and "<PHONE_" in text  # blocks were made, the author is scrubbed
    for piece in ("7700", "900123", "7700 900123"):
        assert piece not in text


def test_pseudonyms_reach_the_blocks(group_workspace):
    from selftune.dataset import run_build

    ws = group_workspace
    ws.config.build.speaker_names = "pseudonyms"
    _, dataset_id = run_build(ws)
    text = _dataset_text(ws, dataset_id)
    assert "Person 1:" in text and "Earlier in this chat" in text
    assert "Ana" not in text and "7700" not in text


def test_the_served_block_of_a_group_with_an_unsaved_contact_is_scrubbed(group_workspace):
    memory = Memory.from_workspace(group_workspace)
    block = memory.for_turns(
        [("Ana", "day 20 honey cake for saturday?")], "whatsapp", "Cake Club",
        when=datetime(2024, 4, 1, tzinfo=UTC),
    )  # fmt: skip
    assert block and "<PHONE_1>:" in block
    assert "7700" not in block


FACT = "The door code is 4471"
PLANTED = [
    "The door  code is 4471, honey",  # double space
    "the door code\nis 4471 honey",  # a line break
    "the door\u00a0code is 4471 honey",  # a no-break space
    "the do\u200bor code is 4471 honey",  # a zero-width space
    "Code: 4471 — use it for the honey",  # the value on its own
]


@pytest.fixture
def planted_workspace(memory_workspace):
    from tests.memory.conftest import msg

    from selftune.memory import on_ingest
    from selftune.memory.facts import Fact, add_fact

    ws = memory_workspace
    add_fact(ws.root, Fact(fact=FACT, topic="home", private=True))
    with ws.open_store() as store:
        store.add_messages(
            [msg("Tobias", text, 400 + i) for i, text in enumerate(PLANTED)]
            + [msg("Mags", "got it x", 410)]
        )
        store.apply_identity(["Mags"])
        on_ingest(store)
    return ws


def test_a_private_fact_in_any_form_never_reaches_a_block(planted_workspace):
    memory = Memory.from_workspace(planted_workspace)
    asks = ["the door code for the honey?", "what is the code again", "honey code door"]
    blocks = [
        memory.for_turns(
            [("Tobias", q)], "whatsapp", "Tobias", when=datetime(2024, 5, 1, tzinfo=UTC)
        )
        or ""
        for q in asks
    ]
    assert any("Earlier in this chat" in b for b in blocks)
    for b in blocks:
        assert "4471" not in b and "door code" not in b.lower()


def test_the_guard_catches_a_private_facts_value_on_its_own(planted_workspace):
    from selftune.guards import OutputGuard
    from selftune.memory.facts import private_facts

    guard = OutputGuard(private_facts(planted_workspace))
    assert "4471" not in guard("Code: 4471 — Mags")
    assert "4471" not in guard("it's 44 71? no, 4471")
    assert guard("room 144712 and 2 jars") == "room 144712 and 2 jars"  # a longer number is not it


def test_facts_files_are_private(memory_workspace):
    from selftune.memory.facts import Fact, add_fact, facts_path
    from selftune.memory.suggest import Suggestions

    root = memory_workspace.root
    facts_path(root).unlink()
    add_fact(root, Fact(fact="I keep bees."))  # created
    assert stat.S_IMODE(facts_path(root).stat().st_mode) == 0o600
    facts_path(root).chmod(0o644)
    add_fact(root, Fact(fact="I swim in the sea.", private=True))  # appended
    assert stat.S_IMODE(facts_path(root).stat().st_mode) == 0o600
    suggestions = Suggestions.load(root)
    suggestions.save()
    assert stat.S_IMODE(suggestions.path.stat().st_mode) == 0o600


def test_training_block_equals_served_block_in_a_group_with_an_unsaved_contact(group_workspace):
    from transformers import AutoTokenizer

    from selftune.artefacts import read_split
    from selftune.dataset import run_build
    from selftune.memory import token_counter
    from selftune.twin import MEMORY_MARK

    ws = group_workspace
    _, dataset_id = run_build(ws)
    memory = Memory.from_workspace(ws)
    count = token_counter(AutoTokenizer.from_pretrained(ws.config.train.base))
    with ws.open_store() as store:
        stored = [m for m in store.messages() if m.kind == "text"]
    compared = 0
    for split in ("valid", "train"):
        for record in read_split(ws.datasets_dir / dataset_id, split):
            system = record["messages"][0]["content"]
            if MEMORY_MARK not in system or "<PHONE_1>" not in system:
                continue
            start = datetime.fromisoformat(record["_meta"]["start"])
            later = [m for m in stored if m.timestamp >= start]
            turns = []
            for m in later:  # the window's messages up to the owner's first reply
                if m.is_me:
                    break
                turns.append((m.author, m.text))
            served = memory.for_turns(
                turns, "whatsapp", "Cake Club", when=start, count_tokens=count
            )
            assert served == system.split(MEMORY_MARK)[1]
            compared += 1
        if compared >= 3:
            break
    assert compared >= 3
