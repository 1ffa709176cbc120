"""The workspace against a hostile neighbour: private file modes, a twin.yaml planted in a parent
folder, a judge URL only the config chose; and every command using the newest finished run."""

from __future__ import annotations

import json
import os
import shutil
import stat
from pathlib import Path

import pytest
from click.testing import CliRunner

from selftune.cli import cli
from selftune.errors import SelftuneError
from selftune.store import Store
from selftune.workspace import find_workspace, init_workspace


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_workspace_files_are_private_even_under_a_permissive_umask(tmp_path):
    old = os.umask(0o002)  # what many desktops use: group-writable, world-readable
    try:
        ws = init_workspace(tmp_path / "twin", ["Mags"])
        run = ws.artefacts.new_run().path
        Store(ws.root / "other.sqlite").close()
    finally:
        os.umask(old)
    assert mode(ws.root) == 0o700
    assert mode(ws.config_path) == 0o600  # may hold serve.api_key
    assert mode(ws.store_path) == 0o600
    assert mode(ws.root / "other.sqlite") == 0o600
    for folder in (ws.datasets_dir, ws.runs_dir, ws.reports_dir, run):
        assert mode(folder) == 0o700, folder


def test_a_twin_yaml_others_can_write_is_refused_when_found_by_searching(tmp_path, monkeypatch):
    shared = tmp_path / "shared"
    init_workspace(shared, ["Eve"])
    shared.chmod(0o777)  # like /tmp: anyone could have put this twin.yaml here
    mine = shared / "me" / "exports"
    mine.mkdir(parents=True)
    monkeypatch.chdir(mine)
    monkeypatch.delenv("SELFTUNE_WORKSPACE", raising=False)
    with pytest.raises(SelftuneError, match="writable by every user"):
        find_workspace()
    result = CliRunner().invoke(cli, ["people"])
    assert result.exit_code == 1 and "refusing the workspace" in result.output
    shared.chmod(0o775)  # group-writable, as a umask of 002 makes it: the user's own group
    assert find_workspace().found == "parent"
    (shared / "twin.yaml").chmod(0o666)
    with pytest.raises(SelftuneError, match="file .* is writable"):
        find_workspace()
    (shared / "twin.yaml").chmod(0o600)
    assert find_workspace().found == "parent"
    assert find_workspace(shared).found == "explicit"  # named by the user: trusted


def test_a_command_says_which_workspace_it_uses_when_found_in_a_parent(tmp_path, monkeypatch):
    ws = init_workspace(tmp_path / "twin", ["Mags"])
    (ws.root / "exports").mkdir()
    monkeypatch.chdir(ws.root / "exports")
    monkeypatch.delenv("SELFTUNE_WORKSPACE", raising=False)
    result = CliRunner().invoke(cli, ["people"])
    assert result.exit_code == 0
    assert f"Using the workspace {ws.root}" in result.stderr
    monkeypatch.chdir(ws.root)
    assert "Using the workspace" not in CliRunner().invoke(cli, ["people"]).stderr


def test_a_judge_url_only_the_config_chose_needs_the_owners_confirmation(tmp_path, monkeypatch):
    from selftune.evaluation.evaluate import endpoint

    ws = init_workspace(tmp_path / "twin", ["Mags"])
    ws.config.eval.judge_endpoint = "https://collector.example/v1"
    ws.config.eval.judge_api_key_env = "AWS_SECRET_ACCESS_KEY"
    with pytest.raises(SelftuneError, match="--judge-endpoint https://collector.example/v1"):
        endpoint(ws)
    assert endpoint(ws, "https://collector.example/v1").base_url  # typed by the owner
    ws.config.eval.judge_endpoint = "http://127.0.0.1:8080/v1"
    assert endpoint(ws).base_url == "http://127.0.0.1:8080/v1"  # this machine: fine


# -- the newest finished run -------------------------------------------------------------------


@pytest.fixture
def runs_workspace(tmp_path, tiny_model_dir):
    """A workspace with a finished (full) run, then a newer one still training (no weights, no
    run.json) and a newest one killed after writing its adapter folder but before run.json."""
    ws = init_workspace(tmp_path / "twin", ["Mags"])
    text = ws.config_path.read_text().replace("base: embedded", f"base: {tiny_model_dir}")
    ws.config_path.write_text(text)
    ws = find_workspace(ws.root)
    finished = ws.runs_dir / "20260101-000000"
    shutil.copytree(tiny_model_dir, finished / "model")
    (finished / "run.json").write_text(json.dumps({"base": str(tiny_model_dir), "method": "full"}))
    (ws.runs_dir / "20260102-000000" / "checkpoints").mkdir(parents=True)
    killed = ws.runs_dir / "20260103-000000" / "adapter"
    killed.mkdir(parents=True)
    (killed / "adapter_config.json").write_text("{}")
    return ws, finished


def invoke(ws, *args: str, input: str | None = None):  # type: ignore[no-untyped-def]
    result = CliRunner().invoke(cli, [*args, "--workspace", str(ws.root)], input=input)
    assert result.exit_code == 0, result.output
    return result


@pytest.mark.parametrize(
    "args",
    [
        ("sample", "Dear diary,", "-n", "1", "--max-tokens", "2", "--json"),
        ("reply", "-", "-n", "1", "--max-tokens", "2", "--json"),
        ("chat", "--max-tokens", "2"),
    ],
)
def test_use_commands_take_the_newest_finished_run(runs_workspace, args):
    ws, _ = runs_workspace
    invoke(ws, *args, "--engine", "transformers", input="Tobias: hi\n")


def test_eval_export_and_serve_take_the_newest_finished_run(runs_workspace, monkeypatch):
    from selftune import export as export_module
    from selftune.engines import model_catalog
    from selftune.evaluation import report as report_module

    ws, finished = runs_workspace
    used = {}
    monkeypatch.setattr(
        export_module,
        "export_run",
        lambda run, out, formats, *_, **__: used.setdefault("export", run) and {},
    )
    invoke(ws, "export", "--format", "merged")
    assert used["export"] == finished
    assert model_catalog(ws.runs_dir, "x")["twin"].run_dir == finished
    assert ws.artefacts.run().path == finished

    def fake_evaluate(run_dir, *a, **k):  # type: ignore[no-untyped-def]
        used["eval"] = run_dir
        raise SelftuneError("stop here")

    monkeypatch.setattr(report_module, "evaluate_run", fake_evaluate)
    monkeypatch.setattr(
        type(ws.artefacts), "dataset_of", lambda self, run: type("D", (), {"path": run.path})
    )
    result = CliRunner().invoke(cli, ["eval", "--workspace", str(ws.root)])
    assert "stop here" in result.output and used["eval"] == finished
