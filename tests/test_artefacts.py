"""The artefact folders: a dataset is only a dataset once every file is written."""

from __future__ import annotations

from pathlib import Path

import pytest

from selftune.errors import SelftuneError


def test_a_build_killed_while_writing_leaves_no_dataset(example_workspace, monkeypatch):
    """A build that dies after train.jsonl was opened (here: empty) must not leave a folder
    that `train` takes as the latest dataset."""
    from selftune.dataset import run_build, writer

    ws = example_workspace

    def dies_half_way(data, folder: Path, info, files=None):  # type: ignore[no-untyped-def]
        (folder / "train.jsonl").write_text("")
        raise KeyboardInterrupt

    monkeypatch.setattr(writer, "write_dataset", dies_half_way)
    with pytest.raises(KeyboardInterrupt):
        run_build(ws)
    assert ws.artefacts.entries("datasets", usable_only=False) == []
    with pytest.raises(SelftuneError, match="selftune build"):
        ws.artefacts.dataset()


def test_a_folder_left_in_staging_is_never_the_latest(tmp_path):
    """kill -9 runs no cleanup: what is left under datasets/.staging/ is not a dataset, and a
    later build gets a fresh id beside it."""
    from selftune.workspace import init_workspace

    ws = init_workspace(tmp_path / "twin", ["Mags"])
    left = ws.artefacts.new_dataset()
    (left.path / "train.jsonl").write_text("")  # killed here
    assert ws.artefacts.entries("datasets", usable_only=False) == []
    with ws.artefacts.new_dataset() as folder:
        (folder / "train.jsonl").write_text('{"text": "hello"}\n')
    (done,) = ws.artefacts.entries("datasets")
    assert done.name != left.id
    assert ws.artefacts.dataset().path == done
    assert [d.path for d in ws.artefacts.dataset_folders(staging=True)] == [done, left.path]
