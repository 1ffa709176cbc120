"""Entry point for `python -m selftune` (also used by `accelerate launch -m selftune`)."""

import os
import sys

# `python -m` puts the current folder first on sys.path; inside a workspace its `datasets/` folder
# would shadow the `datasets` package that transformers imports.
if sys.path and os.path.abspath(sys.path[0] or os.curdir) == os.getcwd():
    sys.path.pop(0)

from selftune.cli import main  # noqa: E402

main()
