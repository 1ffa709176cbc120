"""Authorship: would a classifier that knows the owner's writing take the twin's replies for theirs?

A character n-gram (1–4, word-bounded) TF-IDF logistic regression is trained on the owner's
messages from the training split against other people's messages from the same chats. Its
accuracy on the held-out split's real messages says how much to trust it; it is then applied to
generated replies: the share it attributes to the owner, base vs tuned.
"""

from __future__ import annotations

import re
from typing import Any

from selftune.errors import SelftuneError

SPEAKER = re.compile(r"^[^\n:]{1,40}: ", re.MULTILINE)


def chat_messages(records: list[dict[str, Any]]) -> tuple[list[str], list[str]]:
    """(owner's messages, other people's messages) of chat records; speaker names are removed."""
    mine, others = [], []
    for record in records:
        for message in record.get("messages", []):
            if message["role"] == "assistant":
                mine.append(message["content"])
            elif message["role"] == "user":
                others += [p for p in SPEAKER.split(message["content"]) if p.strip()]
    return [t for t in mine if t.strip()], [t.strip() for t in others if t.strip()]


class AuthorshipModel:
    """A fitted classifier: P(owner wrote this) for any text."""

    def __init__(self, pipeline: Any):
        self.pipeline = pipeline

    def owner_probability(self, texts: list[str]) -> list[float]:
        if not texts:
            return []
        return [float(p) for p in self.pipeline.predict_proba(texts)[:, 1]]

    def accuracy(self, mine: list[str], others: list[str]) -> float | None:
        """Balanced accuracy on real messages (mean of the recall on each side)."""
        if not mine or not others:
            return None
        hit_mine = sum(p >= 0.5 for p in self.owner_probability(mine)) / len(mine)
        hit_others = sum(p < 0.5 for p in self.owner_probability(others)) / len(others)
        return (hit_mine + hit_others) / 2


def fit(mine: list[str], others: list[str], seed: int = 0) -> AuthorshipModel:
    """Train the classifier on the owner's vs others' messages (classes weighted equally)."""
    if len(mine) < 3 or len(others) < 3:
        raise SelftuneError(
            "authorship needs at least 3 of your messages and 3 of other people's in the "
            "training split; ingest more chats or leave the 'authorship' section out"
        )
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline

    pipeline = make_pipeline(
        TfidfVectorizer(analyzer="char_wb", ngram_range=(1, 4), sublinear_tf=True, lowercase=False),
        LogisticRegression(max_iter=2000, class_weight="balanced", C=4.0, random_state=seed),
    )
    pipeline.fit(mine + others, [1] * len(mine) + [0] * len(others))
    return AuthorshipModel(pipeline)


def taken_for_owner(model: AuthorshipModel, texts: list[str]) -> dict[str, Any]:
    """Share of `texts` the classifier attributes to the owner, and the mean probability."""
    texts = [t for t in texts if t.strip()]
    probs = model.owner_probability(texts)
    if not probs:
        return {"replies": 0, "taken_for_owner": None, "mean_probability": None}
    return {
        "replies": len(probs),
        "taken_for_owner": round(sum(p >= 0.5 for p in probs) / len(probs), 4),
        "mean_probability": round(sum(probs) / len(probs), 4),
    }
