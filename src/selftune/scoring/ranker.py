"""The preference ranker: learned from what the owner keeps vs rejects, it puts candidates
best-first (`sample`, `amplify`, and `serve` with `rank: true`).

Chosen for being small, fast on a CPU and measurable with a few dozen picks: a logistic
regression over character 1-4-gram TF-IDF of the candidate plus a handful of numbers — the
authorship classifier's P(owner wrote this) (`scoring.authorship`, fitted on the training
split), length and line count. Its accuracy is pairwise, on held-out picks: how often it scores
the chosen candidate above a rejected one; the authorship score alone is measured beside it.
The fitted ranker lives in `<workspace>/ranker/` (ranker.pkl, ranker.json); improve's
`train_ranker` fits it on the workspace's reviews.
"""

from __future__ import annotations

import json
import math
import pickle
from datetime import datetime
from pathlib import Path
from typing import Any

from selftune.errors import SelftuneError
from selftune.picks import Pair, Picks

RANKER_DIR = "ranker"
MIN_EACH = 4


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


def labelled(picks: Picks) -> tuple[list[str], list[int]]:
    """(texts, 1 kept / 0 rejected) from pairs and thumbs, each text once per label."""
    seen: set[tuple[str, int]] = set()
    texts, labels = [], []
    items = [(p.chosen, 1) for p in picks.pairs] + [(p.rejected, 0) for p in picks.pairs]
    items += [(t.text, int(t.desirable)) for t in picks.thumbs]
    for text, label in items:
        if (text, label) not in seen:
            seen.add((text, label))
            texts.append(text)
            labels.append(label)
    return texts, labels


def pairwise_accuracy(score: Any, pairs: list[Pair]) -> float | None:
    """Share of pairs where `score` puts the chosen text above the rejected one (ties: half)."""
    if not pairs:
        return None
    chosen = score([p.chosen for p in pairs])
    rejected = score([p.rejected for p in pairs])
    wins = sum(
        1.0 if c > r else 0.5 if c == r else 0.0 for c, r in zip(chosen, rejected, strict=True)
    )
    return round(wins / len(pairs), 4)


def fit_ranker(
    picks: Picks, authorship: Any, held_out: Picks | None = None, seed: int = 0
) -> Ranker:
    """Fit on `picks`; measure on `held_out` pairs (ranker and authorship alone)."""
    texts, labels = labelled(picks)
    good, bad = sum(labels), len(labels) - sum(labels)
    if good < MIN_EACH or bad < MIN_EACH:
        raise SelftuneError(
            f"the ranker needs at least {MIN_EACH} kept and {MIN_EACH} rejected candidates; the "
            f"picks so far give {good} kept and {bad} rejected. Review more with `selftune review`"
        )
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline, make_union

    pipeline = make_pipeline(
        make_union(
            TfidfVectorizer(
                analyzer="char_wb", ngram_range=(1, 4), sublinear_tf=True, lowercase=False
            ),
            Numbers(authorship),
        ),
        LogisticRegression(max_iter=2000, class_weight="balanced", C=2.0, random_state=seed),
    )
    pipeline.fit(texts, labels)
    ranker = Ranker(pipeline, authorship, {})
    pairs = held_out.pairs if held_out is not None else []
    ranker.info = {
        "model": "logistic regression: char 1-4-gram TF-IDF + authorship P(owner), length, lines",
        "trained": datetime.now().astimezone().isoformat(timespec="seconds"),
        "trained_on": {"kept": good, "rejected": bad, "samples": len(picks.samples)},
        "held_out_pairs": len(pairs),
        "held_out_accuracy": pairwise_accuracy(ranker.scores, pairs),
        "authorship_alone_accuracy": pairwise_accuracy(authorship.owner_probability, pairs)
        if authorship is not None
        else None,
    }
    return ranker


# where the classes a ranker.pkl refers to lived before they moved here
MOVED = {
    "selftune.evaluation.authorship": "selftune.scoring.authorship",
    "selftune.improve.ranker": "selftune.scoring.ranker",
}


class _Unpickler(pickle.Unpickler):
    """Reads rankers saved before their classes moved (`MOVED`)."""

    def find_class(self, module: str, name: str) -> Any:
        return super().find_class(MOVED.get(module, module), name)


def ranker_dir(root: Path) -> Path:
    return root / RANKER_DIR


def save_ranker(ranker: Ranker, root: Path) -> Path:
    folder = ranker_dir(root)
    folder.mkdir(parents=True, exist_ok=True)
    with (folder / "ranker.pkl").open("wb") as f:
        pickle.dump({"pipeline": ranker.pipeline, "authorship": ranker.authorship}, f)
    (folder / "ranker.json").write_text(json.dumps(ranker.info, indent=2) + "\n")
    return folder


def load_ranker(root: Path) -> Ranker | None:
    """The workspace's ranker, or None when none has been trained yet."""
    folder = ranker_dir(root)
    if not (folder / "ranker.pkl").exists():
        return None
    with (folder / "ranker.pkl").open("rb") as f:
        saved = _Unpickler(f).load()  # our own file, written by save_ranker
    info_path = folder / "ranker.json"
    info = json.loads(info_path.read_text()) if info_path.exists() else {}
    return Ranker(saved["pipeline"], saved["authorship"], info)
