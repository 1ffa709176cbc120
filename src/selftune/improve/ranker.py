"""`selftune rank --train`: the preference ranker (`selftune.scoring.ranker`) fitted on the
workspace's reviewed picks, the most recent ones held out to measure it, and saved in
`<workspace>/ranker/`; distill retrains it after each run."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from selftune.errors import SelftuneError
from selftune.picks import reviewed_picks, tags_of
from selftune.scoring import authorship
from selftune.scoring.ranker import Ranker, fit_ranker, load_ranker, save_ranker
from selftune.store.samples import SampleLog
from selftune.twin import Twin
from selftune.use import guard_for
from selftune.workspace import Workspace

__all__ = ["load_ranker", "owner_classifier", "train_ranker"]


def train_ranker(ws: Workspace, progress: Callable[[str], Any] | None = None) -> Ranker:
    """Fit on the reviewed picks (held-out ones kept back), save, return the ranker."""
    settings = ws.config.improve
    train, held = reviewed_picks(
        SampleLog(ws.store_path),
        Twin.from_config(ws.config),
        tags_of(ws.config),
        guard_for(ws, training=True),
        settings.held_out,
    )
    classifier = owner_classifier(ws, settings.seed)
    ranker = fit_ranker(train, classifier, held, settings.seed)
    save_ranker(ranker, ws.root)
    return ranker


def owner_classifier(ws: Workspace, seed: int = 0) -> authorship.AuthorshipModel | None:
    """The authorship classifier on the current twin's training split (None without chats)."""
    try:
        run = ws.artefacts.run()
        train = ws.artefacts.dataset_of(run).read_split("train")
    except SelftuneError:
        try:
            train = ws.artefacts.dataset().read_split("train")
        except SelftuneError:
            return None
    mine, others = authorship.chat_messages(train)
    try:
        return authorship.fit(mine, others, seed)
    except SelftuneError:
        return None
