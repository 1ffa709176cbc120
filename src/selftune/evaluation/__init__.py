"""Evaluate: "is it me?" and "does it leak?" for a run, written to `reports/<id>/`."""

from selftune.evaluation.evaluate import QUICK, run_eval

__all__ = ["QUICK", "run_eval"]
