"""The record of using the twin: every prompt, its candidates, the one picked, edits and ratings,
and the blind game's answers, kept in the workspace's store.sqlite for the improve loop (and
never printed to the console). Forgetting a contact deletes the samples that quote them here.
"""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import Any

from selftune.errors import SelftuneError
from selftune.store.connection import Store

# an API call logged without asking for review (params.review false) does not wait for it
NOT_FOR_REVIEW = "coalesce(json_extract(params, '$.review'), 1) != 0"


def _now() -> str:
    return datetime.now().astimezone().isoformat(timespec="seconds")


class SampleLog:
    """Writes to `store.sqlite`; a connection per call, so any thread may use it. `path=None`
    (logging switched off) keeps nothing and returns no ids."""

    def __init__(self, path: Path | None):
        self.path = path

    @property
    def enabled(self) -> bool:
        return self.path is not None

    def add(
        self,
        endpoint: str,
        model: str,
        prompt: Any,
        params: dict[str, Any],
        candidates: list[str],
        flags: list[str] | None = None,
    ) -> int | None:
        if self.path is None:
            return None
        with Store(self.path) as store, store.db:
            cur = store.db.execute(
                "INSERT INTO samples (created, endpoint, model, prompt, params, candidates, flags)"
                " VALUES (?, ?, ?, ?, ?, ?, ?)",
                (
                    _now(),
                    endpoint,
                    model,
                    json.dumps(prompt, ensure_ascii=False),
                    json.dumps(params),
                    json.dumps(candidates, ensure_ascii=False),
                    json.dumps(flags or []),
                ),
            )
            return int(cur.lastrowid or 0)

    def pick(self, sample_id: int, candidate: int, edited: str | None = None) -> None:
        if edited is not None and not edited.strip():
            raise SelftuneError(
                f"the edited text for sample {sample_id} is empty; give the text you keep, or "
                "leave --edited out to keep the candidate as it is"
            )
        with Store(self._need()) as store, store.db:
            count = self._candidates(store, sample_id)
            if not 0 <= candidate < count:
                raise SelftuneError(self._no_candidate(sample_id, candidate, count))
            store.db.execute(
                "UPDATE samples SET picked = ?, edited = ? WHERE id = ?",
                (candidate, edited, sample_id),
            )

    def rate(self, sample_id: int, candidate: int, rating: int) -> None:
        with Store(self._need()) as store, store.db:
            count = self._candidates(store, sample_id)
            if not 0 <= candidate < count:
                raise SelftuneError(self._no_candidate(sample_id, candidate, count))
            store.db.execute(
                "INSERT INTO ratings (sample_id, candidate, rating, created) VALUES (?, ?, ?, ?)",
                (sample_id, candidate, rating, _now()),
            )

    def reject_all(self, sample_id: int) -> None:
        """A thumbs down for every candidate of a sample (none sounds like the owner)."""
        with Store(self._need()) as store, store.db:
            count = self._candidates(store, sample_id)
            store.db.executemany(
                "INSERT INTO ratings (sample_id, candidate, rating, created) VALUES (?, ?, ?, ?)",
                [(sample_id, i, -1, _now()) for i in range(count)],
            )

    def reviewed(self) -> list[dict[str, Any]]:
        """Every sample with a pick or a rating, oldest first, each with its ratings."""
        return self._select(
            "picked IS NOT NULL OR id IN (SELECT sample_id FROM ratings)", order="id"
        )

    def waiting(self, limit: int | None = None) -> list[dict[str, Any]]:
        """Samples of two or more candidates (or from `amplify`) not yet picked or rated,
        oldest first."""
        return self._select(
            "picked IS NULL AND id NOT IN (SELECT sample_id FROM ratings) AND "
            "(endpoint = 'amplify' OR json_array_length(candidates) > 1) AND " + NOT_FOR_REVIEW,
            order="id",
            limit=limit,
        )

    def review_counts(self) -> dict[str, int]:
        """How much review has been collected: waiting, picked, edited, rated samples, ratings."""
        if self.path is None:
            return {"waiting": 0, "picked": 0, "edited": 0, "rated": 0, "ratings": 0}
        with Store(self.path) as store:
            one = store.db.execute
            return {
                "waiting": one(
                    "SELECT count(*) FROM samples WHERE picked IS NULL AND id NOT IN "
                    "(SELECT sample_id FROM ratings) AND "
                    "(endpoint = 'amplify' OR json_array_length(candidates) > 1) AND "
                    + NOT_FOR_REVIEW
                ).fetchone()[0],
                "picked": one("SELECT count(*) FROM samples WHERE picked IS NOT NULL").fetchone()[
                    0
                ],
                "edited": one("SELECT count(*) FROM samples WHERE edited IS NOT NULL").fetchone()[
                    0
                ],
                "rated": one("SELECT count(DISTINCT sample_id) FROM ratings").fetchone()[0],
                "ratings": one("SELECT count(*) FROM ratings").fetchone()[0],
            }

    def _select(self, where: str, order: str, limit: int | None = None) -> list[dict[str, Any]]:
        if self.path is None:
            return []
        tail = f" LIMIT {int(limit)}" if limit else ""
        with Store(self.path) as store:
            rows = store.db.execute(f"SELECT * FROM samples WHERE {where} ORDER BY {order}{tail}")
            out = [dict(r) for r in rows.fetchall()]
            ratings: dict[int, list[dict[str, Any]]] = {}
            for r in store.db.execute(
                "SELECT sample_id, candidate, rating FROM ratings ORDER BY id"
            ):
                ratings.setdefault(r[0], []).append({"candidate": r[1], "rating": r[2]})
        for row in out:
            for key in ("prompt", "params", "candidates", "flags"):
                row[key] = json.loads(row[key])
            row["ratings"] = ratings.get(row["id"], [])
        return out

    def get(self, sample_id: int) -> dict[str, Any]:
        with Store(self._need()) as store:
            row = store.db.execute("SELECT * FROM samples WHERE id = ?", (sample_id,)).fetchone()
            if row is None:
                raise SelftuneError(f"no sample {sample_id} in {self.path}")
            ratings = store.db.execute(
                "SELECT candidate, rating FROM ratings WHERE sample_id = ? ORDER BY id",
                (sample_id,),
            ).fetchall()
        out = dict(row)
        for key in ("prompt", "params", "candidates", "flags"):
            out[key] = json.loads(out[key])
        out["ratings"] = [dict(r) for r in ratings]
        return out

    def blind_answer(self, report: str, pair: int, correct: bool) -> dict[str, int]:
        """Keep one answer of the blind game; returns the score so far for that report."""
        if self.path is None:
            return {"answered": 0, "correct": 0}
        with Store(self.path) as store, store.db:
            store.db.execute(
                "INSERT INTO blind_answers (report, pair, correct, created) VALUES (?, ?, ?, ?)",
                (report, pair, int(correct), _now()),
            )
            row = store.db.execute(
                "SELECT count(*), coalesce(sum(correct), 0) FROM blind_answers WHERE report = ?",
                (report,),
            ).fetchone()
        return {"answered": row[0], "correct": row[1]}

    def forget_mentioning(self, names: set[str]) -> int:
        """Delete logged samples whose prompt has a turn by one of `names`, or names them anywhere
        (a memory block in a logged system prompt quotes them by name), and their ratings;
        returns how many samples went."""
        if self.path is None:
            return 0
        folded = {n.casefold() for n in names}
        with Store(self.path) as store, store.db:
            doomed = []
            for sample_id, prompt in store.db.execute("SELECT id, prompt FROM samples"):
                try:
                    shown = json.loads(prompt)
                except ValueError:
                    shown = prompt
                turns = shown if isinstance(shown, list) else []
                by_them = any(
                    isinstance(t, dict) and str(t.get("author", "")).casefold() in folded
                    for t in turns
                )
                text = prompt.casefold()
                if by_them or any(len(n) >= 3 and n in text for n in folded):
                    doomed.append((sample_id,))
            store.db.executemany("DELETE FROM ratings WHERE sample_id = ?", doomed)
            store.db.executemany("DELETE FROM samples WHERE id = ?", doomed)
        return len(doomed)

    def _need(self) -> Path:
        if self.path is None:
            raise SelftuneError("sample logging is off (serve.log_samples: false in twin.yaml)")
        return self.path

    @staticmethod
    def _no_candidate(sample_id: int, candidate: int, count: int) -> str:
        return (
            f"sample {sample_id} has no candidate {candidate}; its candidates are numbered "
            f"0 to {count - 1}"
        )

    @staticmethod
    def _candidates(store: Store, sample_id: int) -> int:
        row = store.db.execute(
            "SELECT candidates FROM samples WHERE id = ?", (sample_id,)
        ).fetchone()
        if row is None:
            raise SelftuneError(
                f"no sample {sample_id} in the store; `selftune review` lists what waits"
            )
        return len(json.loads(row[0]))
