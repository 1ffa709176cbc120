"""evaluate_run end to end on the tiny random model with an untrained adapter (so base and tuned
are the same model: every base-vs-tuned number must agree), and the eval/report commands."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from selftune.config import EVAL_SECTIONS, EvalConfig
from selftune.evaluation.perplexity import conversation_kind
from selftune.evaluation.report import evaluate_run
from selftune.evaluation.sections.replies import held_out_contexts

TINY = EvalConfig(
    contexts=2,
    candidates=1,
    max_new_tokens=8,
    canary_candidates=16,
    regurgitation_prompts=2,
    prefix_tokens=4,
    free_samples=2,
    judge="tuned",
    minutes=0,  # no time budget: every sample is done (tests/evaluation/test_notes_eval.py)
)


@pytest.fixture(scope="module")
def untrained_run(tmp_path_factory: pytest.TempPathFactory, tiny_model_dir: Path) -> Path:
    """A run folder whose LoRA adapter was never trained (B = 0: tuned equals base)."""
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    run_dir = tmp_path_factory.mktemp("runs") / "r1"
    model = get_peft_model(
        AutoModelForCausalLM.from_pretrained(tiny_model_dir),
        LoraConfig(r=4, target_modules="all-linear", task_type="CAUSAL_LM"),
    )
    model.save_pretrained(run_dir / "adapter")
    (run_dir / "run.json").write_text(json.dumps({"base": str(tiny_model_dir), "dataset": "d1"}))
    (run_dir / "metrics.jsonl").write_text(
        '{"step": 1, "loss": 3.0}\n{"step": 2, "loss": 2.5, "eval_loss": 2.8}\n'
    )
    return run_dir


def test_conversation_kind():
    assert conversation_kind({"text": "x"}) == "note"
    assert conversation_kind({"messages": [{"role": "user", "content": "hi"}]}) == "direct"
    group = {
        "messages": [
            {"role": "user", "content": "Juno: hi"},
            {"role": "user", "content": "Tobias: yo"},
        ]
    }
    assert conversation_kind(group) == "group"
    assert conversation_kind({"text": "x", "_meta": {"conversation_kind": "channel"}}) == "channel"


def test_held_out_contexts_pair_each_owner_turn_with_what_came_before(small_dataset: Path):
    from selftune.artefacts import read_split

    contexts = held_out_contexts(read_split(small_dataset, "valid"), 10, 0)
    assert len(contexts) == 2  # two chats, one owner turn each; the note is not a chat
    for c in contexts:
        assert c["context"][-1]["role"] == "user" and c["source"] == "whatsapp"
    assert len(held_out_contexts(read_split(small_dataset, "valid"), 1, 0)) == 1


def test_default_is_perplexity_only(untrained_run: Path, small_dataset: Path):
    report = evaluate_run(untrained_run, small_dataset, 128)
    assert report["sections"] == ["perplexity"]
    ppl = report["perplexity"]
    assert ppl["base"] == pytest.approx(ppl["tuned"], rel=1e-5)
    assert set(report["perplexity_by_source"]) == {"whatsapp", "notes:markdown"}
    assert set(report["perplexity_by_kind"]) == {"direct", "note"}
    assert "style" not in report and "leaks" not in report


def test_every_section_runs_and_base_equals_tuned(untrained_run: Path, small_dataset: Path):
    from selftune.dataset.canaries import plant_canaries, write_canaries
    from selftune.dataset.examples import Example

    write_canaries(
        small_dataset,
        plant_canaries(
            [Example({"messages": [{"role": "system", "content": "s"}]}, "whatsapp", "c", None)], 1
        ),
    )
    report = evaluate_run(
        untrained_run, small_dataset, 128, config=TINY, private_facts=["Rosewood"]
    )
    assert report["sections"] == list(EVAL_SECTIONS)
    assert report["train"]["curve"] == {"train": [[1, 3.0], [2, 2.5]], "valid": [[2, 2.8]]}
    assert report["contexts"] == 2 and len(report["_blind_pairs"]) == 2
    assert report["style"]["distance"]["base"]["distance"] is not None
    assert report["authorship"]["held_out_accuracy"] is not None
    assert report["judge"]["real"]["scored"] == 2
    canaries = report["leaks"]["canaries"]
    assert canaries["planted"] == 1 and canaries["rows"][0]["candidates"] == 16
    assert report["leaks"]["regurgitation"]["prompts"] <= 2
    assert report["leaks"]["pii"]["private_facts_listed"] == 1
    assert report["verdict"].endswith(".")
    assert set(report["timings_s"]) >= {"perplexity", "style", "leaks"}


def test_unknown_section_is_a_clear_error(untrained_run: Path, small_dataset: Path):
    from selftune.errors import SelftuneError

    with pytest.raises(SelftuneError, match="unknown eval section"):
        evaluate_run(untrained_run, small_dataset, 128, sections=["vibes"])


def test_eval_and_report_commands(untrained_run: Path, small_dataset: Path, tmp_path: Path):
    from selftune.cli import cli
    from selftune.workspace import init_workspace

    ws = init_workspace(tmp_path / "twin", ["Mags"])
    shutil.copytree(small_dataset, ws.datasets_dir / "d1")
    shutil.copytree(untrained_run, ws.runs_dir / "r1")
    runner = CliRunner()
    args = ["eval", "-w", str(ws.root), "--sections", "perplexity,style", "--contexts", "2"]
    result = runner.invoke(cli, [*args, "--candidates", "1", "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout[result.stdout.index("{") :])
    folder = ws.reports_dir / report["id"]
    saved = json.loads((folder / "report.json").read_text())
    assert saved["perplexity"] == report["perplexity"]
    assert saved["blind_pairs"] == 2
    html = (folder / "report.html").read_text()
    assert saved["verdict"].split(";")[0] in html.replace("&#x27;", "'")
    assert "http://" not in html.replace('xmlns="http://www.w3.org/2000/svg"', "")
    pairs = [json.loads(x) for x in (folder / "blind_pairs.jsonl").read_text().splitlines()]
    assert {"context", "real", "generated"} <= set(pairs[0])

    (folder / "blind_results.jsonl").write_text(
        '{"pair": 0, "correct": true}\n{"pair": 1, "correct": false}\n'
    )
    shown = runner.invoke(cli, ["report", "-w", str(ws.root), "--json"])
    assert shown.exit_code == 0, shown.output
    assert json.loads(shown.stdout)["blind_test"] == {"guesses": 2, "real_spotted": 0.5}

    bad = runner.invoke(cli, ["eval", "-w", str(ws.root), "--sections", "vibes"])
    assert bad.exit_code == 1 and "unknown eval section" in bad.output


def test_bench_command_with_a_judged_check(untrained_run: Path, tmp_path: Path):
    from selftune.cli import cli
    from selftune.workspace import init_workspace

    ws = init_workspace(tmp_path / "twin", ["Mags"])
    shutil.copytree(untrained_run, ws.runs_dir / "r1")
    bench = tmp_path / "bench.yaml"
    bench.write_text(
        "defaults: {n: 2, max_tokens: 4}\n"
        "cases:\n"
        "  - name: never empty\n    prompt: hi\n    checks: [{not_contains: 'as an AI'}]\n"
        "  - name: judged\n    prompt: hi\n    checks: [{judged: 'Is it a greeting?'}]\n"
    )
    result = CliRunner().invoke(
        cli, ["bench", str(bench), "-w", str(ws.root), "--model", "base", "--json"]
    )
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout[result.stdout.index("{") :])
    assert out["cases"][0]["pass_rate"] == 1.0 and out["cases"][1]["candidates"] == 2
    assert (
        ws.reports_dir / sorted(p.name for p in ws.reports_dir.iterdir())[-1] / "bench.json"
    ).exists()
    bad = CliRunner().invoke(cli, ["bench", str(bench), "-w", str(ws.root), "--model", "gpt"])
    assert bad.exit_code == 1 and "use base, tuned" in bad.output
