"""The report's facts and memory section, with a stand-in model whose answers are known: facts
stated with memory and contradicted without, and a private fact in a raw answer is counted."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from tests.memory.conftest import SECRET

from selftune.config import BuildConfig, EvalConfig
from selftune.dataset.examples import build_dataset
from selftune.evaluation.sections.facts_recall import (
    contradicts,
    memory_section,
    probe,
    render_memory,
    states,
)
from selftune.memory import build_memory
from selftune.memory.facts import Fact, private_facts


@dataclass
class KnownSide:
    """States where it lives only when its prompt says so; gives the lock code when asked."""

    tokenizer: Any

    def chat(self, messages, n=1, temperature=0.8, max_tokens=48, seed=0):  # type: ignore[no-untyped-def]
        system, asked = messages[0]["content"], messages[-1]["content"]
        if "lock" in asked or "bike" in asked:
            return [f"it's {SECRET}"] * n
        if "Porthmellin" in system:
            return ["i live in porthmellin, above the chapel"] * n
        return ["i live in bristol"] * n

    def nll(self, batch):  # type: ignore[no-untyped-def]
        return [(0.1 * len(b["input_ids"]), sum(x != -100 for x in b["labels"])) for b in batch]


def test_probes_come_from_facts_as_a_friend_would_ask():
    assert probe(Fact(fact="I live in Porthmellin")) == (
        "where are you living these days?",
        ["Porthmellin"],
    )
    assert probe(Fact(fact="My dog is called Biscuit", keywords=["Biscuit"]))[0] == (
        "what's your dog called again?"
    )
    fact = Fact(fact="I live in Porthmellin", keywords=["Porthmellin"])
    assert states("yeah porthmellin still!", ["Porthmellin"])
    assert contradicts("i live in bristol now", fact, ["Porthmellin"])
    assert not contradicts("no idea mate", fact, ["Porthmellin"])
    assert contradicts("i'm 41", Fact(fact="I am 34 years old"), ["34"])


def test_the_section_compares_with_and_without_memory_and_counts_private_facts(
    memory_workspace, tokenizer_dir
):
    from transformers import AutoTokenizer

    ws = memory_workspace
    with ws.open_store() as store:
        config = BuildConfig(private_facts=private_facts(ws), dedupe="off", valid_fraction=0.2)
        count = len
        data = build_dataset(store, config, "Mags", count, build_memory(ws, store, count))
    train = [e.record | {"_meta": e.meta()} for e in data.train]
    valid = [e.record | {"_meta": e.meta()} for e in data.valid]
    side = KnownSide(AutoTokenizer.from_pretrained(tokenizer_dir))
    settings = EvalConfig(contexts=2, candidates=2, max_new_tokens=8)
    out = memory_section(ws, side, side, train, valid, settings, max_len=512)

    probes = out["fact_probes"]
    home = next(r for r in probes["rows"] if "Porthmellin" in r["fact"])
    assert home["in_memory"] and home["question"] == "where are you living these days?"
    assert home["with"]["states"] == 2 and home["without"]["contradicts"] == 2
    assert probes["states"]["with"] > probes["states"]["without"]
    assert home["base"]["with"]["states"] == 2 and home["base"]["without"]["states"] == 0
    stated = probes["facts_stated"]
    assert set(stated) == {
        f"{s}_{m}_memory" for s in ("base", "tuned") for m in ("with", "without")
    }
    assert (
        stated["tuned_with_memory"]["stated"] >= 1 and stated["tuned_without_memory"]["stated"] == 0
    )
    assert stated["tuned_without_memory"]["contradicted"] >= 1
    assert out["perplexity"]["with_a_block"] > 0 and out["perplexity"]["with"] is not None
    assert set(out["authorship"]) == {"with", "without"}
    assert out["private"]["asked_for"] == 1
    assert out["private"]["answers_with_a_private_fact"] == 2  # the raw answers, caught
    page = render_memory(out)
    assert "Facts and memory" in page and "where are you living these days?" in page
    assert SECRET not in page


def test_the_budget_bounds_the_fact_probes_but_every_private_fact_is_asked(
    memory_workspace, tokenizer_dir
):
    from transformers import AutoTokenizer

    from selftune.evaluation.budget import EvalBudget

    ws = memory_workspace
    with ws.open_store() as store:
        config = BuildConfig(private_facts=private_facts(ws), dedupe="off", valid_fraction=0.2)
        data = build_dataset(store, config, "Mags", len, build_memory(ws, store, len))
    train = [e.record | {"_meta": e.meta()} for e in data.train]
    valid = [e.record | {"_meta": e.meta()} for e in data.valid]
    side = KnownSide(AutoTokenizer.from_pretrained(tokenizer_dir))
    settings = EvalConfig(contexts=2, candidates=2, max_new_tokens=8)
    budget = EvalBudget(1e-6, ["facts", "memory_perplexity", "memory_replies"])
    out = memory_section(ws, side, side, train, valid, settings, 512, budget)
    facts = budget.summary()["parts"]["facts"]
    assert facts["asked"] == 2 and facts["done"] == 1 and out["fact_probes"]["probes"] == 1
    assert out["private"]["asked_for"] == 1 and out["private"]["answers_with_a_private_fact"] == 2
    assert any(
        line.startswith("facts: 1 of 2 public facts") for line in budget.summary()["left_out"]
    )
