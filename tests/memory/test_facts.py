"""facts.yaml (errors with their place, appending keeps comments) and suggestions mined from
the owner's own words only, accepted or rejected by the owner."""

from __future__ import annotations

import pytest
from click.testing import CliRunner
from tests.memory.conftest import SECRET, msg

from selftune.cli import cli
from selftune.errors import ConfigError
from selftune.memory.facts import Fact, add_fact, load_facts, private_facts
from selftune.memory.suggest import mine


def test_a_bad_facts_file_names_the_file_and_the_entry(tmp_path):
    (tmp_path / "facts.yaml").write_text(
        "facts:\n  - fact: ok\n  - topic: home\n  - fact: x\n    privat: true\n"
    )
    with pytest.raises(ConfigError) as err:
        load_facts(tmp_path)
    text = str(err.value)
    assert "facts.yaml" in text and "facts.1.fact" in text and "facts.2.privat" in text


def test_private_facts_join_the_build_list_and_only_their_keywords_are_secret(memory_workspace):
    ws = memory_workspace
    ws.config.build.private_facts = ["Rosewood Lane"]
    assert private_facts(ws) == ["Rosewood Lane", SECRET]
    facts = load_facts(ws.root)
    assert [f.fact for f in facts.matching("where do you live now?", 4)] == [
        "I live in Porthmellin, above the old chapel."
    ]
    assert all(not f.private for f in facts.matching("your bike lock code?", 4))


def test_adding_a_fact_keeps_the_owners_comments(tmp_path):
    (tmp_path / "facts.yaml").write_text("# mine, hands off\nfacts:\n- fact: I keep bees  # yes\n")
    add_fact(tmp_path, Fact(fact="My dog is called Biscuit", topic="pet", keywords=["Biscuit"]))
    text = (tmp_path / "facts.yaml").read_text()
    assert "# mine, hands off" in text and "# yes" in text
    assert [f.fact for f in load_facts(tmp_path).items] == [
        "I keep bees",
        "My dog is called Biscuit",
    ]


def test_suggestions_come_from_the_owners_words_with_where_they_were_found(memory_workspace):
    ws = memory_workspace
    with ws.open_store() as store:
        store.add_messages(
            [
                msg("Mags", "i live in porthmellin now, by the harbour", 2000),
                msg("Mags", "my brother tobias says hi", 2001),
                msg("Tobias", "I live in Bristol and my sister is Mags", 2002),
                msg("Mags", "my brother is coming round", 2003),
            ]
        )
        store.apply_identity(["Mags"])
        found = {c.fact: c for c in mine(store)}
    assert "I live in porthmellin" in found
    assert found["I live in porthmellin"].keywords == ["porthmellin"]
    assert found["I live in porthmellin"].where  # the message's origin
    assert "My brother is tobias" in found
    assert not any("Bristol" in f or "sister" in f for f in found)  # not the owner's words
    assert not any("coming" in f for f in found)


def test_accept_and_reject_on_the_command_line(memory_workspace):
    ws = memory_workspace
    run = CliRunner().invoke
    out = run(cli, ["facts", "suggest", "-w", str(ws.root)])
    assert out.exit_code == 0 and "1. I am often in touch with" in out.output
    assert run(cli, ["facts", "accept", "1", "-w", str(ws.root)]).exit_code == 0
    assert run(cli, ["facts", "reject", "2", "-w", str(ws.root)]).exit_code == 0
    again = run(cli, ["facts", "accept", "1", "-w", str(ws.root)])
    assert again.exit_code == 1 and "already accepted" in again.output
    facts = [f.fact for f in load_facts(ws.root).items]
    assert len(facts) == 4 and facts[-1].startswith("I am often in touch with")
    listed = run(cli, ["facts", "suggest", "-w", str(ws.root)]).output
    assert facts[-1] not in listed  # accepted: in facts.yaml now
    assert listed.count("often in touch") == 0  # the other one was rejected
