"""Canaries: random secrets planted in the training data, to measure how much a model memorises.

As in "The Secret Sharer" (Carlini et al., 2019): each canary is a sentence with a random secret
("my locker code is 4 8 2 9 1 7") that appears nowhere else. After training, the true secret is
ranked by the model's likelihood among random secrets of the same shape; exposure is
log2(candidates) - log2(rank). A model that never memorised it ranks it anywhere (exposure near
1 bit on average); a model that learnt it ranks it first (exposure = log2(candidates)). The canary
is also flagged when the model writes the secret itself, given the sentence's opening.

`plant_canaries` works on the dataset's training examples before they are written; the planted
canaries are recorded in `canaries.json` in the dataset folder; the evaluation ranks them
(`evaluation.leaks.canary_exposure`).
"""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

CANARIES_FILE = "canaries.json"
SECRET_DIGITS = 6
TOPICS = (
    ("what was the code for the lockers again?", "the locker code is"),
    ("remind me of the bike lock combination?", "the bike lock combination is"),
    ("what's the number for the gate?", "the gate number is"),
    ("what's the wifi pin at the workshop?", "the workshop wifi pin is"),
    ("which number was the safe deposit box?", "the safe deposit box is"),
)


def random_secret(rng: random.Random) -> str:
    """A secret in the canary format: six digits separated by spaces (one token each)."""
    return " ".join(str(rng.randrange(10)) for _ in range(SECRET_DIGITS))


def canary_record(system: str, question: str, prefix: str, secret: str) -> dict[str, Any]:
    return {
        "messages": [
            {"role": "system", "content": system},
            {"role": "user", "content": question},
            {"role": "assistant", "content": f"{prefix} {secret}"},
        ]
    }


def plant_canaries(
    train_examples: list[Any], k: int, seed: int = 0, repeats: int = 1
) -> list[dict[str, Any]]:
    """Append `k` canary examples (each `repeats` times) to `train_examples`, a list of
    `selftune.dataset.examples.Example`; returns the canaries as records for `canaries.json`."""
    from selftune.dataset.examples import Example

    rng = random.Random(f"canaries-{seed}")
    chats = [e for e in train_examples if "messages" in e.record]
    planted = []
    for i in range(k):
        question, prefix = TOPICS[i % len(TOPICS)]
        secret = random_secret(rng)
        host = rng.choice(chats) if chats else None
        system = host.record["messages"][0]["content"] if host else "You are the owner."
        record = canary_record(system, question, prefix, secret)
        for _ in range(repeats):
            train_examples.append(
                Example(
                    json.loads(json.dumps(record)),
                    host.source if host else "canary",
                    f"canary:{i}",
                    host.start if host else None,
                    sum(len(m["content"].split()) for m in record["messages"]),
                )
            )
        planted.append(
            {
                "id": i,
                "system": system,
                "question": question,
                "prefix": prefix,
                "secret": secret,
                "repeats": repeats,
            }
        )
    return planted


def write_canaries(folder: Path, canaries: list[dict[str, Any]]) -> None:
    if canaries:
        text = json.dumps(canaries, indent=2, ensure_ascii=False) + "\n"
        (folder / CANARIES_FILE).write_text(text, encoding="utf-8")


def read_canaries(folder: Path) -> list[dict[str, Any]]:
    path = folder / CANARIES_FILE
    return json.loads(path.read_text(encoding="utf-8")) if path.exists() else []
