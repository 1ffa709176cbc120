"""The run planner: --minutes fills its budget, evaluations are frequent enough, early stopping
ends a run whose validation loss rises, and --epochs / --max-steps win over the plan."""

from __future__ import annotations

import json
import math

import pytest

from selftune.config import TrainConfig
from selftune.training.planner import (
    eval_interval,
    lr_factor,
    make_plan,
    provisional_plan,
    scaled_learning_rate,
    steps_for_budget,
)
from selftune.training.trainer import train


def test_a_time_budget_fits_steps_and_evaluations():
    steps, _ = steps_for_budget(120, step_s=1.0, eval_s=0.5, steps_per_epoch=3, min_evals=8)
    every = eval_interval(steps, 3, 8)
    used = steps * 1.0 + math.ceil(steps / every) * 0.5
    assert 0.95 * 120 <= used <= 120  # fills the budget
    assert every <= 3 and math.ceil(steps / every) >= 8  # every epoch, 8 times at least
    # evaluations that would eat the budget are capped, and the plan says so
    steps, notes = steps_for_budget(60, step_s=1.0, eval_s=20.0, steps_per_epoch=100, min_evals=8)
    assert steps >= 40 and notes


def test_small_data_is_evaluated_at_least_eight_times():
    assert eval_interval(steps=40, steps_per_epoch=20, min_evals=8) == 5
    assert eval_interval(steps=400, steps_per_epoch=2, min_evals=8) == 2  # every epoch
    assert eval_interval(steps=3, steps_per_epoch=50, min_evals=8) == 1


def test_epochs_and_max_steps_win_over_the_time_plan():
    by_epochs = make_plan(TrainConfig(minutes=2, epochs=2), 5, True)
    assert by_epochs.decided_by == "epochs" and by_epochs.max_steps == 10
    assert any("only cap" in n for n in by_epochs.notes)
    by_steps = make_plan(TrainConfig(minutes=2, epochs=2, max_steps=7), 5, True)
    assert by_steps.decided_by == "max_steps" and by_steps.max_steps == 7
    assert make_plan(TrainConfig(), 5, True).max_steps == 15  # 3 epochs without any budget


def test_learning_rate_is_scaled_to_the_run_unless_given():
    assert scaled_learning_rate(4e-4, 400) == 4e-4
    assert scaled_learning_rate(4e-4, 25) == pytest.approx(8e-4)
    assert scaled_learning_rate(4e-4, 1) == pytest.approx(8e-4)  # at most 2x
    assert make_plan(TrainConfig(max_steps=25), 5, True).learning_rate == pytest.approx(8e-4)
    assert make_plan(TrainConfig(max_steps=25, learning_rate=1e-4), 5, True).learning_rate == 1e-4


def test_the_schedule_follows_the_live_plan():
    plan = provisional_plan(TrainConfig(minutes=1), steps_per_epoch=2, has_valid=True)
    initial = plan.learning_rate
    plan.max_steps, plan.warmup_steps, plan.learning_rate = 20, 2, initial / 2
    factors = [lr_factor(plan, s, "cosine", initial) for s in range(21)]
    assert factors[0] < factors[1] < factors[2] == pytest.approx(0.5)  # warm-up to the new peak
    assert all(a >= b for a, b in zip(factors[2:], factors[3:], strict=False))  # then decays
    assert factors[20] == pytest.approx(0.0, abs=1e-9)
    plan.max_steps = 40  # re-fitted longer: the same step is earlier in the decay
    assert lr_factor(plan, 20, "cosine", initial) > factors[20]


def test_minutes_plans_a_run_that_fills_the_budget(tiny_dataset, tiny_config, tmp_path):
    run_dir = tmp_path / "runs" / "planned"
    run_dir.mkdir(parents=True)
    tiny_config.eval_every = None
    tiny_config.minutes = 0.5  # 30 s
    summary = train(tiny_dataset, run_dir, tiny_config)
    plan = summary["plan"]
    assert plan["decided_by"] == "minutes" and plan["step_seconds"] > 0
    assert summary["stopped_by"] in ("planned_steps", "time limit")
    # the old budget was only a cap (3 epochs here are 15 steps, a fraction of a second each);
    # on a busy machine fewer fit, and the plan knows how many from its own measured steps
    per_step = plan["step_seconds"] + (plan["eval_seconds"] or 0) / plan["eval_every"]
    assert summary["steps"] >= min(3 * plan["steps_per_epoch"] + 1, 0.3 * 30 / per_step)
    slack = 8 + 2 * (plan["step_seconds"] + (plan["eval_seconds"] or 0))
    assert 0.6 * 30 <= summary["seconds"] <= 30 + slack
    assert summary["evaluations"] >= 8
    saved = json.loads((run_dir / "plan.json").read_text())
    assert saved["max_steps"] == plan["max_steps"]


def _overfitting_dataset(tmp_path):
    """Training on one reply repeated; validation on other, varied text: the validation loss
    falls at first (the template), then rises as the model learns only the repeated reply."""
    folder = tmp_path / "datasets" / "overfit"
    folder.mkdir(parents=True)
    train_rows = [
        {
            "messages": [
                {"role": "user", "content": f"question {i}"},
                {"role": "assistant", "content": "zebra zebra zebra zebra zebra zebra"},
            ]
        }
        for i in range(8)
    ]
    words = ["apple pie recipe", "the tide is low", "violin varnish", "my queen bee"]
    valid_rows = [
        {
            "messages": [
                {"role": "user", "content": f"tell me {i}"},
                {"role": "assistant", "content": f"{words[i % 4]} and then {words[(i + 1) % 4]}"},
            ]
        }
        for i in range(4)
    ]
    for name, rows in (("train", train_rows), ("valid", valid_rows)):
        (folder / f"{name}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return folder


def test_early_stopping_ends_a_run_whose_validation_loss_rises(tiny_config, tmp_path):
    dataset = _overfitting_dataset(tmp_path)
    run_dir = tmp_path / "runs" / "overfit"
    run_dir.mkdir(parents=True)
    tiny_config.max_steps = 200
    tiny_config.learning_rate = 3e-2
    tiny_config.eval_every = 2
    tiny_config.early_stopping_patience = 3
    summary = train(dataset, run_dir, tiny_config)
    log = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    evals = [e["eval_loss"] for e in log if "eval_loss" in e]
    assert summary["stopped_by"] == "early_stopping"
    assert summary["steps"] < 200
    assert max(evals[evals.index(min(evals)) :]) > min(evals)  # it did rise after the best
    # the saved adapter is the best checkpoint, not the last step
    assert summary["valid_loss"] == pytest.approx(min(evals))
    assert summary["best_step"] < summary["steps"]
