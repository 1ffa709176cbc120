"""The preference ranker at use time: loading `<workspace>/ranker/` and putting candidates
best-first. Fitting it on the owner's picks is `selftune.improve.ranker`."""

from __future__ import annotations

import json
import math
import pickle
from pathlib import Path
from typing import Any

RANKER_DIR = "ranker"


class Numbers:
    """Numeric features of candidate texts (a picklable sklearn transformer)."""

    def __init__(self, authorship: Any):
        self.authorship = authorship

    def fit(self, texts: list[str], y: Any = None) -> Numbers:
        return self

    def transform(self, texts: list[str]) -> Any:
        import numpy as np

        owner = (
            self.authorship.owner_probability(list(texts))
            if self.authorship
            else [0.5] * len(texts)
        )
        rows = [
            [2 * p - 1, math.log1p(len(t)) / 5, t.count("\n") / 4, float(t[:1].islower())]
            for p, t in zip(owner, texts, strict=True)
        ]
        return np.asarray(rows, dtype=float)


class Ranker:
    """A fitted ranker: `scores(texts)` (higher is more the owner's pick), `order(texts)`."""

    def __init__(self, pipeline: Any, authorship: Any, info: dict[str, Any]):
        self.pipeline = pipeline
        self.authorship = authorship
        self.info = info

    def scores(self, texts: list[str]) -> list[float]:
        if not texts:
            return []
        return [float(p) for p in self.pipeline.predict_proba(list(texts))[:, 1]]

    def order(self, texts: list[str]) -> list[str]:
        """`texts` best-first (a stable sort: ties keep their order)."""
        scores = self.scores(texts)
        return [t for _, t in sorted(zip(scores, texts, strict=True), key=lambda x: -x[0])]


def ranker_dir(root: Path) -> Path:
    return root / RANKER_DIR


def load_ranker(root: Path) -> Ranker | None:
    """The workspace's ranker, or None when none has been trained yet."""
    folder = ranker_dir(root)
    if not (folder / "ranker.pkl").exists():
        return None
    with (folder / "ranker.pkl").open("rb") as f:
        saved = pickle.load(f)  # our own file, written by improve.ranker.save_ranker
    info_path = folder / "ranker.json"
    info = json.loads(info_path.read_text()) if info_path.exists() else {}
    return Ranker(saved["pipeline"], saved["authorship"], info)
