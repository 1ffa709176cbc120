"""Improve: amplify (many candidates), review (picks, edits, thumbs), distill (a new run from the
current twin on what its owner kept) and the preference ranker."""

from selftune.improve.amplify import run_amplify
from selftune.improve.distill import run_distill
from selftune.improve.ranker import train_ranker

__all__ = ["run_amplify", "run_distill", "train_ranker"]
