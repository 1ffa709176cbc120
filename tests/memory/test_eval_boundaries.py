"""The boundaries section: probes made from the store (a contact asked about a conversation they
were not in), answered by stand-in sides whose behaviour is known, so the counts can be checked:
a side that repeats its memory block states the content only when the block breaks the rule."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.memory.test_scope import CONVERSATIONS, scoped  # noqa: F401  (the fixture)

from selftune.config import EvalConfig
from selftune.evaluation.section import EvalContext
from selftune.evaluation.sections import SECTIONS
from selftune.evaluation.sections.boundaries import boundaries_section, html, make_probes, summary
from selftune.twin import MEMORY_MARK


@dataclass
class Parrot:
    """Repeats its memory block (what a twin that uses its memory word for word would say)."""

    tokenizer: Any
    parrots: bool = True

    def chat(self, messages, n=1, temperature=0.8, max_tokens=48, seed=0):  # type: ignore[no-untyped-def]
        system = messages[0]["content"]
        said = system.split(MEMORY_MARK)[1] if self.parrots and MEMORY_MARK in system else "no idea"
        return [said] * n


def _context(ws, tokenizer_dir: Path) -> EvalContext:  # type: ignore[no-untyped-def]
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tokenizer_dir)
    config = EvalConfig(candidates=2, max_new_tokens=8)
    return EvalContext(ws.root, ws.root, config, {"boundaries"}, 512, Parrot(tokenizer, False),
                       Parrot(tokenizer), [], [], ws=ws)  # fmt: skip


def test_probes_ask_a_contact_about_a_conversation_they_were_not_in(scoped):  # noqa: F811
    with scoped.open_store() as store:
        probes = make_probes(store)
    assert probes
    for p in probes:
        _, _, people, mark = CONVERSATIONS[p.conversation]
        assert p.contact not in people and p.cue not in p.targets and p.targets
    assert {p.contact for p in probes} >= {"Juno", "Tomás"}


def test_the_rule_holds_and_the_section_would_see_it_broken(scoped, tokenizer_dir):  # noqa: F811
    out = boundaries_section(_context(scoped, tokenizer_dir))
    assert out["probes"] >= 2 and out["scope"] == "participants"
    assert out["blocks_breaking_scope"] == 0
    assert out["reachable_without_rule"] > 0  # the probes are ones memory would have answered
    assert out["states"]["tuned_with_memory"] == 0 and out["states"]["base"] == 0
    page = html({"boundaries": out})
    assert "Boundaries" in page and "<b>0</b>" in page
    assert "blocks breaking the scope rule: 0" in summary({"boundaries": out})[0]

    scoped.config.memory.scope = "everyone"  # the old way: memory crosses conversations
    leaky = boundaries_section(_context(scoped, tokenizer_dir))
    assert leaky["blocks_breaking_scope"] > 0
    assert leaky["states"]["tuned_with_memory"] > 0


def test_the_section_sits_next_to_the_leak_tests():
    names = [s.name for s in SECTIONS]
    assert names.index("boundaries") == names.index("leaks") + 1
