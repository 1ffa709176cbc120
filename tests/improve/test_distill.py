"""Distill on the tiny model: synthetic picks move the chosen-vs-rejected margin the right way,
too few picks train nothing, resume finishes an interrupted distill."""

from __future__ import annotations

import json

import pytest

from selftune.errors import SelftuneError

from .conftest import PARENT, add_picks


def held_margin(ws, run_id):
    from selftune.evaluation.sections.improvement import (
        held_out_picks,
        margin_summary,
        pair_margins,
    )
    from selftune.models import load_tuned

    run = ws.artefacts.run(run_id)
    held = held_out_picks(ws, run.info())
    model, tokenizer = load_tuned(run.path)
    return margin_summary(pair_margins(model, tokenizer, held.pairs, 96))


@pytest.mark.parametrize("method", ["dpo", "kto", "sft"])
def test_distill_moves_the_margin_towards_what_the_owner_picks(improve_ws, method):
    from selftune.improve import run_distill

    add_picks(improve_ws, 12)
    summary, run_dir = run_distill(improve_ws, method=method)
    info = json.loads((run_dir / "run.json").read_text())
    assert info["parent"] == PARENT and info["distill"]["method"] == method
    counts = info["distill"]["counts"]
    assert counts["kept"] == 9 and counts["pairs"] == 9  # 3 of 12 held out (most recent)
    assert info["distill"]["held_out_samples"] == [10, 11, 12]
    assert info["distill"]["replayed"] >= 1
    # the new run is the twin now, and the held-out margin grew against the parent's
    assert improve_ws.artefacts.run().id == run_dir.name
    before, after = held_margin(improve_ws, PARENT), held_margin(improve_ws, run_dir.name)
    assert after["mean_margin"] > before["mean_margin"]
    assert after["prefers_chosen"] >= before["prefers_chosen"]


def test_too_few_picks_trains_nothing_and_says_what_is_needed(improve_ws):
    from selftune.improve import run_distill

    add_picks(improve_ws, 2)
    runs_before = sorted(p.name for p in improve_ws.runs_dir.iterdir())
    with pytest.raises(SelftuneError, match=r"too few picks.*2 kept.*sft needs 4"):
        run_distill(improve_ws)
    with pytest.raises(SelftuneError, match="--method dpo"):
        run_distill(improve_ws, method="dpo")
    assert sorted(p.name for p in improve_ws.runs_dir.iterdir()) == runs_before


def test_auto_chooses_dpo_with_pairs_and_resume_finishes_the_run(improve_ws):
    from selftune.improve import run_distill

    add_picks(improve_ws, 10)
    summary, run_dir = run_distill(improve_ws)
    assert summary["distill"]["method"] == "dpo" and "pairs" in summary["distill"]["why"]
    # an interrupted distill (no run.json yet) resumes from its phases
    (run_dir / "run.json").unlink()
    resumed, again = run_distill(improve_ws, resume_id="latest")
    assert again == run_dir and resumed["distill"]["method"] == "dpo"
    assert (run_dir / "adapter" / "adapter_config.json").exists()


def test_a_full_fine_tune_parent_is_refused_before_anything_is_written(improve_ws):
    from selftune.improve import run_distill

    full = improve_ws.runs_dir / "20300101-000000"
    (full / "model").mkdir(parents=True)
    (full / "model" / "config.json").write_text("{}")
    (full / "run.json").write_text(json.dumps({"base": "x", "dataset": "d1"}))
    add_picks(improve_ws, 6)
    with pytest.raises(SelftuneError, match="full fine-tune; distill continues a LoRA adapter"):
        run_distill(improve_ws)
    assert sorted(p.name for p in improve_ws.runs_dir.iterdir()) == [PARENT, full.name]


def test_train_and_distill_write_run_json_in_one_shape(improve_ws):
    from selftune.artefacts import RUN_KEYS
    from selftune.improve import run_distill

    add_picks(improve_ws, 8)
    _, run_dir = run_distill(improve_ws, method="sft")
    trained = json.loads((improve_ws.runs_dir / PARENT / "run.json").read_text())
    distilled = json.loads((run_dir / "run.json").read_text())
    assert list(trained) == list(distilled) == list(RUN_KEYS)
    assert (trained["kind"], trained["parent"], trained["distill"]) == ("train", None, None)
    assert (distilled["kind"], distilled["parent"]) == ("distill", PARENT)
    assert distilled["steps"] == distilled["distill"]["phases"]["sft"]["steps"] > 0
    assert distilled["base"] == trained["base"] and distilled["dataset"] == trained["dataset"]
