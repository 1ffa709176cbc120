"""Build: the store's messages and notes become a scrubbed, split dataset (`datasets/<id>/`)."""

from selftune.dataset.builder import run_build

__all__ = ["run_build"]
