"""The evaluation's time budget: every part of the report gets a share of the minutes left, works
through its sample in chunks while its share lasts, and records what it left out.

A part's share is the time left times its weight over the weights of the parts still to run, so
time a part does not use goes to the ones after it. A part always does its first chunk (`minimum`
items), so a report never has an empty section only because the machine is slow; the budget can
then run over, and the report says by how much. Without a budget every item is done.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from typing import Any, TypeVar

T = TypeVar("T")

# relative cost of a part's full default sample on a CPU with the embedded model
WEIGHTS = {
    "perplexity": 3.0,  # the headline number, and cheap: it should rarely be cut
    "replies": 3.0,
    "notes": 3.0,
    "judge": 1.0,
    "canaries": 1.5,
    "regurgitation": 1.0,
    "pii": 1.0,
    "free": 1.0,
    "boundaries": 1.0,  # questions as a contact about conversations they were not in
    "facts": 1.0,  # the memory section: fact probes, perplexity and replies with/without memory
    "memory_perplexity": 1.0,
    "memory_replies": 1.0,
    "picks": 1.0,  # the picks section: held-out pairs, fresh replies before and after
    "picks_replies": 1.0,
}
DEFAULT_CPU_MINUTES = 3.0


def default_minutes(minutes: float | None) -> float | None:
    """The budget to use: `minutes` as given (0: none), unset: 3 on a CPU, none on a GPU."""
    if minutes is not None:
        return minutes or None
    import torch

    return None if torch.cuda.is_available() else DEFAULT_CPU_MINUTES


class EvalBudget:
    def __init__(self, minutes: float | None, parts: Sequence[str]):
        self.seconds = minutes * 60 if minutes else None
        self.started = time.monotonic()
        self.pending = [p for p in parts if p in WEIGHTS]
        self.parts: dict[str, dict[str, Any]] = {}

    def left(self) -> float | None:
        if self.seconds is None:
            return None
        return self.seconds - (time.monotonic() - self.started)

    def share(self, part: str) -> float | None:
        """Seconds `part` may use, taken out of the pending parts (None: no limit)."""
        left = self.left()
        weights = {p: WEIGHTS[p] for p in self.pending}
        if part in self.pending:
            self.pending.remove(part)
        if left is None:
            return None
        return max(0.0, left) * WEIGHTS.get(part, 1.0) / max(sum(weights.values()), 1e-9)

    def chunks(
        self, part: str, items: Sequence[T], size: int = 1, minimum: int = 1, unit: str = "items"
    ) -> Iterator[list[T]]:
        """`items` in chunks while `part`'s share lasts: first `minimum` items (always done),
        then chunks of `size`, each only if it is expected (at the mean time per item so far)
        to end within the share."""
        allowed = self.share(part)
        started = time.monotonic()
        done = 0
        record = self.parts.setdefault(part, {"asked": 0, "done": 0, "unit": unit})
        record["asked"] += len(items)
        record["allowed_s"] = None if allowed is None else round(allowed, 1)
        start = 0
        while start < len(items):
            take = min(size, minimum) if done == 0 else size
            spent = time.monotonic() - started
            expected = spent / done * min(take, len(items) - start) if done else 0.0
            if allowed is not None and done and spent + expected > allowed:
                break
            chunk = list(items[start : start + take])
            yield chunk
            start += take
            done += len(chunk)
            record["done"] += len(chunk)
        record["seconds"] = round(time.monotonic() - started, 1)

    def summary(self) -> dict[str, Any]:
        """The budget, what each part did within it, and a sentence per part that left some out."""
        left_out = [
            f"{part}: {r['done']} of {r['asked']} {r['unit']} (the rest did not fit in "
            f"{r['allowed_s']:.0f}s)"
            for part, r in self.parts.items()
            if r["done"] < r["asked"] and r.get("allowed_s") is not None
        ]
        used = time.monotonic() - self.started
        return {
            "minutes": None if self.seconds is None else round(self.seconds / 60, 2),
            "used_s": round(used, 1),
            "over_s": round(used - self.seconds, 1)
            if self.seconds and used > self.seconds
            else 0.0,
            "parts": self.parts,
            "left_out": left_out,
        }


def unlimited() -> EvalBudget:
    return EvalBudget(None, [])
