"""Entry point for `python -m selftune` (also used by `accelerate launch -m selftune`)."""

from selftune.cli import main

main()
