"""`selftune sample`, `reply` and `serve` from the command line (tiny model as the base)."""

from __future__ import annotations

import json
import sqlite3

import pytest
from click.testing import CliRunner

from selftune.cli import cli


@pytest.fixture
def tiny_workspace(tmp_path, tiny_model_dir):
    from selftune.workspace import init_workspace

    ws = init_workspace(tmp_path / "twin", ["Mags"])
    text = ws.config_path.read_text().replace("base: embedded", f"base: {tiny_model_dir}")
    ws.config_path.write_text(text)
    return ws


def run(ws, *args: str, input: str | None = None):  # type: ignore[no-untyped-def]
    result = CliRunner().invoke(cli, [*args, "--workspace", str(ws.root)], input=input)
    assert result.exit_code == 0, result.output
    return result


def test_sample_prints_n_candidates_and_logs_them(tiny_workspace):
    out = run(tiny_workspace, "sample", "Dear diary,", "-n", "3", "--max-tokens", "4",
              "--base-only", "--engine", "transformers", "--json")  # fmt: skip
    candidates = json.loads(out.stdout)
    assert len(candidates) == 3
    db = sqlite3.connect(tiny_workspace.store_path)
    assert json.loads(db.execute("SELECT candidates FROM samples").fetchone()[0]) == candidates


def test_reply_reads_a_conversation_from_stdin(tiny_workspace):
    convo = "Tobias: are you coming sunday?\nMags: maybe\nTobias: bring honey\n"
    out = run(tiny_workspace, "reply", "-", "-n", "2", "--max-tokens", "3", "--base-only",
              "--engine", "transformers", "--json", input=convo)  # fmt: skip
    assert len(json.loads(out.stdout)) == 2


def test_parse_conversation_keeps_multiline_turns():
    from selftune.use import parse_conversation

    turns = parse_conversation("Tobias: hi\nstill me\n\nMags: hello: yes")
    assert turns == [("Tobias", "hi\nstill me"), ("Mags", "hello: yes")]


def test_serve_refuses_a_public_address_without_a_key(tiny_workspace):
    result = CliRunner().invoke(
        cli, ["serve", "--host", "0.0.0.0", "--workspace", str(tiny_workspace.root)]
    )
    assert result.exit_code != 0
    assert "api_key" in result.output


def test_sample_without_a_run_says_what_to_do(tiny_workspace):
    result = CliRunner().invoke(cli, ["sample", "x", "--workspace", str(tiny_workspace.root)])
    assert result.exit_code == 1
    assert "selftune train" in result.output


def test_serve_takes_the_key_from_a_file_or_the_environment_never_argv(tiny_workspace, tmp_path):
    where = ["--workspace", str(tiny_workspace.root)]
    result = CliRunner().invoke(cli, ["serve", "--api-key", "k" * 32, *where])
    assert result.exit_code == 2 and "No such option" in result.output  # `ps` would show it
    short = tmp_path / "key"
    short.write_text("s3cret\n")
    result = CliRunner().invoke(cli, ["serve", "--api-key-file", str(short), *where])
    assert result.exit_code == 1 and "at least 16" in result.output
    result = CliRunner().invoke(
        cli, ["serve", "--host", "0.0.0.0", *where], env={"SELFTUNE_API_KEY": "abc"}
    )
    assert result.exit_code == 1 and "at least 16" in result.output
