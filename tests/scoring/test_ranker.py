"""The preference ranker's folder: a ranker saved before its classes moved to `selftune.scoring`
still loads."""

from __future__ import annotations

import pickle

from selftune.scoring.authorship import AuthorshipModel
from selftune.scoring.ranker import load_ranker, ranker_dir


def test_a_ranker_saved_under_the_old_module_names_loads(tmp_path):
    saved = pickle.dumps({"pipeline": None, "authorship": AuthorshipModel("fitted")}, protocol=0)
    old = saved.replace(b"selftune.scoring.authorship", b"selftune.evaluation.authorship")
    assert b"selftune.evaluation.authorship" in old
    folder = ranker_dir(tmp_path)
    folder.mkdir()
    (folder / "ranker.pkl").write_bytes(old)
    ranker = load_ranker(tmp_path)
    assert ranker is not None
    assert isinstance(ranker.authorship, AuthorshipModel) and ranker.authorship.pipeline == "fitted"
    assert load_ranker(tmp_path / "elsewhere") is None
