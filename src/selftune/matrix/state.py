"""What the Matrix commands remember between runs, in the workspace's `matrix/` folder (0700):
`ingest.json` (the sync token the next `ingest matrix` starts from) and `bot.json` (the bot's
drafts, answers and sent replies by event id, so a restart neither drafts twice nor sends twice).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from selftune.errors import SelftuneError
from selftune.workspace import PRIVATE_DIR, write_private

STATE_DIR = "matrix"


def state_path(root: Path, name: str) -> Path:
    return root / STATE_DIR / name


def load_state(root: Path, name: str) -> dict[str, Any]:
    path = state_path(root, name)
    if not path.exists():
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except ValueError as exc:
        raise SelftuneError(
            f"{path} is not valid JSON ({exc}); move it away to start the Matrix state afresh "
            "(ingest then reads the whole history again, adding only what is new)"
        ) from exc
    if not isinstance(data, dict):
        raise SelftuneError(f"{path}: expected a JSON object; move it away to start afresh")
    return data


def save_state(root: Path, name: str, data: dict[str, Any]) -> None:
    """Written whole to a temporary file, then renamed over the old one (a kill midway keeps
    the last complete state)."""
    folder = root / STATE_DIR
    folder.mkdir(mode=PRIVATE_DIR, exist_ok=True)
    path = state_path(root, name)
    tmp = path.with_suffix(".tmp")
    write_private(tmp, json.dumps(data, indent=1, ensure_ascii=False) + "\n")
    tmp.replace(path)
