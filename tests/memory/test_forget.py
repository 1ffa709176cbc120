"""`selftune memory forget CONTACT`: out of the index, out of every block, out of future
datasets, suggestions and logged samples, and still out after the export is imported again."""

from __future__ import annotations

from datetime import timedelta

from click.testing import CliRunner
from tests.memory.conftest import T0, msg

from selftune.cli import cli
from selftune.config import BuildConfig, MemoryConfig
from selftune.dataset.examples import build_dataset
from selftune.memory import Moment, build_memory, memory_block, on_ingest
from selftune.memory.facts import load_facts
from selftune.memory.suggest import Suggestions
from selftune.store.samples import SampleLog


def words(text: str) -> int:
    return len(text.split())


def test_forget_removes_a_contact_everywhere(memory_workspace):
    ws = memory_workspace
    log = SampleLog(ws.store_path)
    log.add("reply", "twin", [{"author": "Juno", "text": "any honey?"}], {}, ["yes"])
    log.add("reply", "twin", [{"author": "Tobias", "text": "any honey?"}], {}, ["yes"])
    chat = [{"role": "system", "content": "Memory:\nJuno: any honey left for the gig?"}]
    log.add("chat", "twin", chat + [{"role": "user", "content": "hi"}], {}, ["hey"])
    with ws.open_store() as store:
        Suggestions.load(ws.root).refresh(store, load_facts(ws.root))
    assert any("Juno" in c.fact for c in Suggestions.load(ws.root).candidates)

    result = CliRunner().invoke(cli, ["memory", "forget", "juno", "--yes", "-w", str(ws.root)])
    assert result.exit_code == 0, result.output
    assert "Forgot Juno" in result.output

    late = T0 + timedelta(days=80)
    with ws.open_store() as store:
        indexed = store.db.execute(
            "SELECT count(*) FROM memory_meta WHERE conversation_id = 'c-juno'"
        ).fetchone()[0]
        assert indexed == 0
        hits = store.db.execute(
            "SELECT count(*) FROM memory_fts WHERE memory_fts MATCH 'gig'"
        ).fetchone()[0]
        assert hits == 0
        # a new import of the same chat, with a new message, does not bring her back
        store.add_messages(
            [msg("Juno", "m99999 honey for the gig please", 99999, "c-juno", "Juno")]
        )
        on_ingest(store)
        settings = MemoryConfig(exchanges=10, recent_turns=10, max_tokens=4000)
        for moment in (
            Moment("honey for the gig?", late, "c-juno", ("Juno",)),
            Moment("honey for the gig?", late, None, ("Juno",)),
        ):
            block = memory_block(store, load_facts(ws.root), settings, moment, "Mags")
            assert "juno" not in block.text.casefold() and "gig" not in block.text
            assert all(h.conversation_id != "c-juno" for h in block.messages())
        data = build_dataset(store, BuildConfig(dedupe="off"), "Mags", words,
                             build_memory(ws, store, words))  # fmt: skip
        samples = [r[0] for r in store.db.execute("SELECT prompt FROM samples")]
    assert "juno" not in repr([e.record for e in data.train + data.valid]).casefold()
    assert data.filtered["conversation with an excluded contact"] == 1
    assert not any("Juno" in c.fact for c in Suggestions.load(ws.root).candidates)
    assert len(samples) == 1 and "Tobias" in samples[0]


def test_forget_names_a_contact_it_does_not_know(memory_workspace):
    result = CliRunner().invoke(
        cli, ["memory", "forget", "Nobody", "--yes", "-w", str(memory_workspace.root)]
    )
    assert result.exit_code == 1
    assert "nobody called 'Nobody'" in result.output and "selftune people" in result.output


def test_people_shows_what_memory_holds_for_a_contact(memory_workspace):
    result = CliRunner().invoke(
        cli, ["people", "--memory", "Tobias", "-w", str(memory_workspace.root)]
    )
    assert result.exit_code == 0, result.output
    assert "161 messages in memory from 1 conversation(s)" in result.output
