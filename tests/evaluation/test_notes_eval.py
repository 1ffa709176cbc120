""" "Is it me?" for a notes-only twin (every section present), the evaluation's time budget
(sizes each part, says what it left out), and full-vocabulary logits computed in parts."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from selftune.config import EvalConfig
from selftune.evaluation.report import evaluate_run

from .conftest import write_split

TOPICS = ["hive", "tide", "varnish", "sourdough", "fiddle", "biscuit", "stall", "tattoo"]


def note(i: int) -> dict:
    topic = TOPICS[i % len(TOPICS)]
    lines = [f"# {topic} notes {i}", ""]
    lines += [f"- {topic} day {d}: checked the {topic} — grand, bees willing x" for d in range(6)]
    lines += [f"    - and a nested thought {d} about the {topic}" for d in range(2)]
    return {"text": "\n".join(lines)}


@pytest.fixture
def notes_dataset(tmp_path: Path) -> Path:
    folder = tmp_path / "datasets" / "notes-only"
    folder.mkdir(parents=True)
    write_split(folder, "train", [note(i) for i in range(8)])
    write_split(folder, "valid", [note(i) for i in range(8, 12)])
    return folder


@pytest.fixture
def notes_run(tmp_path: Path, tiny_model_dir: Path) -> Path:
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    run_dir = tmp_path / "runs" / "r1"
    model = get_peft_model(
        AutoModelForCausalLM.from_pretrained(tiny_model_dir),
        LoraConfig(r=4, target_modules="all-linear", task_type="CAUSAL_LM"),
    )
    model.save_pretrained(run_dir / "adapter")
    (run_dir / "run.json").write_text(json.dumps({"base": str(tiny_model_dir), "dataset": "n"}))
    return run_dir


SMALL = EvalConfig(
    note_prompts=4, max_new_tokens=12, canary_candidates=16, regurgitation_prompts=2,
    prefix_tokens=4, free_samples=2, judge="tuned", minutes=0,
)  # fmt: skip


def test_a_notes_only_twin_gets_every_section(notes_run: Path, notes_dataset: Path, tmp_path):
    from selftune.evaluation.html import write_report

    report = evaluate_run(notes_run, notes_dataset, 128, config=SMALL)
    assert report["perplexity_by_source"].keys() == {"notes:markdown"}
    notes = report["notes"]
    assert notes["prompts"] == 4
    for ex in notes["examples"]:
        assert ex["prompt"].startswith("# ") and ex["real"].strip()
        assert ex["base"] is not None and ex["tuned"] is not None
    style = notes["style"]
    assert style["distance"]["base"]["distance"] is not None
    assert set(style["by_source"]) == {"notes:markdown"}
    auth = notes["authorship"]
    assert auth["trained_on"]["yours"] >= 3 and auth["trained_on"]["base_continuations"] >= 3
    assert auth["held_out_accuracy"] is not None
    assert (
        auth["tuned"]["replies"] == 4 * SMALL.candidates and "notes:markdown" in auth["by_source"]
    )
    assert {"canaries", "regurgitation", "pii"} <= set(report["leaks"])
    assert "notes' style" in report["verdict"]
    assert report["budget"]["minutes"] is None and report["budget"]["left_out"] == []
    folder = tmp_path / "report"
    folder.mkdir()
    write_report(folder, report)
    page = (folder / "report.html").read_text()
    for heading in (
        "Perplexity on your held-out words",
        "No held-out chat messages",
        "Continuing your held-out notes",
        "Authorship of the continuations",
        "Does it leak?",
        "Time budget",
    ):
        assert heading in page


def test_the_budget_sizes_each_part_and_says_what_it_left_out(notes_run, notes_dataset):
    config = SMALL.model_copy(update={"minutes": 0.001, "note_prompts": 16})
    report = evaluate_run(notes_run, notes_dataset, 128, config=config)
    budget = report["budget"]
    assert budget["minutes"] == 0.0 or budget["minutes"] < 0.01
    parts = budget["parts"]
    assert parts["notes"]["done"] < parts["notes"]["asked"]  # 4 held-out + 8 training beginnings
    assert parts["notes"]["done"] >= 2  # the first chunk always runs
    assert any(line.startswith("notes:") for line in budget["left_out"])
    assert report["notes"]["prompts"] >= 1  # the section is there, smaller


def test_vocabulary_logits_in_parts_give_the_same_likelihoods(tiny_model_dir: Path):
    import torch
    import torch.nn.functional as F
    from transformers import AutoModelForCausalLM

    from selftune.evaluation.perplexity import token_nll

    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir).eval()
    batch = [
        {"input_ids": list(range(5, 5 + n)), "labels": [-100] * 2 + list(range(7, 5 + n))}
        for n in (6, 11, 9)
    ]
    whole = token_nll(model, batch, 0, max_scored=10_000)
    parts = token_nll(model, batch, 0, max_scored=4)  # one example per forward pass
    for (a, n), (b, m) in zip(whole, parts, strict=True):
        assert n == m and a == pytest.approx(b, rel=1e-4)
    # against the full logits of each example alone
    for item, (nll, n) in zip(batch, whole, strict=True):
        ids = torch.tensor([item["input_ids"]])
        with torch.no_grad():
            logits = model(input_ids=ids).logits[0, :-1]
        labels = torch.tensor(item["labels"][1:])
        expected = F.cross_entropy(logits, labels, ignore_index=-100, reduction="sum")
        assert nll == pytest.approx(float(expected), rel=1e-4) and n == int((labels >= 0).sum())


def test_notes_authorship_not_you_class_holds_other_peoples_messages():
    from selftune.evaluation.sections.note_continuations import notes_authorship

    mine = [f"- [[garden]] planted {w} today, roots look good" for w in "abcdefgh"]
    base = [f"The {w} is a common plant. It grows well in spring." for w in "abcdefgh"]
    chats = [
        {"messages": [{"role": "system", "content": "s"},
                      {"role": "user", "content": f"Tobias: are you coming to the pub {w}?"},
                      {"role": "assistant", "content": "yes"}]}
        for w in "abcdef"
    ]  # fmt: skip
    texts = {"real": mine[:4], "base": base[:4], "tuned": mine[4:]}
    done = [
        {"source": "notes", "real": t, "base": [b], "tuned": [t]}
        for t, b in zip(mine[:4], base[:4], strict=True)
    ]
    out = notes_authorship(mine, base, texts, done, chats, chats[:3], seed=0)
    assert out["trained_on"] == {"yours": 8, "base_continuations": 8, "other_people": 6}
    assert out["not_you"] == "the base model's continuations and other people's messages"
    assert set(out["accuracy_against"]) == {"base_continuations", "other_people"}
    assert out["accuracy_against"]["other_people"] is not None
    alone = notes_authorship(mine, base, texts, done, [], [], seed=0)
    assert alone["not_you"] == "the base model's continuations"
    assert alone["trained_on"]["other_people"] == 0
