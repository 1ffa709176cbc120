"""`selftune eval`'s picks section: held-out picks, before (parent) vs after (distilled run)."""

from __future__ import annotations

from .conftest import PARENT, add_picks


def test_eval_reports_the_held_out_margin_before_and_after_distill(improve_ws):
    from selftune.evaluation import run_eval
    from selftune.improve import run_distill, train_ranker

    add_picks(improve_ws, 12)
    _, run_dir = run_distill(improve_ws, method="sft")
    train_ranker(improve_ws)
    improve_ws.config.eval.max_new_tokens = 8
    report, folder = run_eval(improve_ws, sections=["picks"])
    picks = report["picks"]
    assert picks["distilled"] and picks["method"] == "sft"
    assert picks["held_out_samples"] == 3 and picks["held_out_pairs"] == 3
    assert picks["before"]["model"] == PARENT and picks["after"]["model"] == run_dir.name
    assert picks["after"]["mean_margin"] > picks["before"]["mean_margin"]
    assert picks["beats_before"] is True
    assert picks["ranker"]["held_out_accuracy"] == 1.0
    assert picks["authorship"]["before"]["replies"] == picks["authorship"]["contexts"]
    page = (folder / "report.html").read_text()
    assert "Picks: does the twin prefer what you pick?" in page and "prefers your pick" in page
    assert "prefers your picks more</b> than " + PARENT in page


def test_eval_without_picks_says_how_to_get_them(improve_ws):
    from selftune.evaluation import run_eval

    report, _ = run_eval(improve_ws, sections=["picks"])
    assert report["picks"]["held_out_pairs"] == 0 and "selftune amplify" in report["picks"]["note"]


def test_eval_minutes_bound_the_picks_and_memory_sections(improve_ws):
    from selftune.evaluation import run_eval

    add_picks(improve_ws, 12)
    improve_ws.config.eval.max_new_tokens = 8
    improve_ws.config.eval.minutes = 1e-6  # spent before any section starts
    report, _ = run_eval(improve_ws, PARENT, sections=["picks", "memory"])
    budget = report["budget"]
    parts = budget["parts"]
    assert parts["picks"] == parts["picks"] | {"asked": 3, "done": 1}  # the first chunk runs
    assert report["picks"]["held_out_pairs"] == 3 and report["picks"]["after"]["pairs"] == 1
    assert report["picks"]["before"]["model"] == "base"  # not distilled: compared with its base
    for part in ("memory_perplexity", "memory_replies"):
        assert 1 == parts[part]["done"] < parts[part]["asked"]
    assert report["memory"]["perplexity"]["examples"] == 1
    assert {line.split(":")[0] for line in budget["left_out"]} >= {
        "picks",
        "memory_perplexity",
        "memory_replies",
    }
