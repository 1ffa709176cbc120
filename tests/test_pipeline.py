"""Fast tests of the skeleton stages: workspace and config, CLI help, dataset build, masked
encoding, and a LoRA training smoke test on a tiny random model."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from selftune.cli import cli
from selftune.config import BuildConfig, TrainConfig, TwinConfig, load_config
from selftune.errors import ConfigError, SelftuneError
from selftune.workspace import find_workspace, init_workspace

COMMANDS = ["init", "ingest", "messages", "notes", "build", "train", "eval", "sample", "demo"]


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_has_help_with_examples(command: str) -> None:
    result = CliRunner().invoke(cli, [command, "--help"])
    assert result.exit_code == 0, result.output
    assert "Example" in result.output


def test_init_writes_a_commented_config_that_round_trips(tmp_path: Path) -> None:
    ws = init_workspace(tmp_path / "twin", ["Mags", "+44 7700 900123"])
    text = ws.config_path.read_text()
    for section in (TwinConfig, BuildConfig, TrainConfig):
        for name, info in section.model_fields.items():
            assert f"# {info.description.splitlines()[0]}" in text, f"{name} has no comment"
    assert load_config(ws.config_path) == TwinConfig(me=["Mags", "+44 7700 900123"], name="twin")
    assert {p.name for p in ws.root.iterdir()} >= {
        "twin.yaml",
        "store.sqlite",
        "datasets",
        "runs",
        "reports",
    }


def test_config_errors_name_every_bad_key(tmp_path: Path) -> None:
    path = tmp_path / "twin.yaml"
    path.write_text("train:\n  learning_rate: -1\n  batch_size: zero\nbuild:\n  typo_key: 1\n")
    with pytest.raises(ConfigError) as info:
        load_config(path)
    message = str(info.value)
    assert "3 problem(s)" in message
    for key in ("train.learning_rate", "train.batch_size", "build.typo_key"):
        assert key in message


def test_commands_outside_a_workspace_say_what_to_do(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("SELFTUNE_WORKSPACE", raising=False)
    with pytest.raises(SelftuneError, match="selftune init"):
        find_workspace()
    result = CliRunner().invoke(cli, ["messages"])
    assert result.exit_code == 1
    assert "selftune init" in result.output


def test_messages_and_notes_jsonl_fields(example_workspace) -> None:
    runner = CliRunner()
    out = runner.invoke(cli, ["messages", "--jsonl", "-w", str(example_workspace.root)])
    assert out.exit_code == 0, out.output
    rows = [json.loads(line) for line in out.output.splitlines()]
    required = {
        "id",
        "source",
        "conversation_id",
        "conversation_title",
        "timestamp",
        "author",
        "is_me",
        "kind",
        "text",
    }
    assert all(required <= set(r) for r in rows)
    mine = [r for r in rows if r["is_me"]]
    assert mine and all(r["author"] == "Mags" for r in mine)
    assert {r["kind"] for r in rows} >= {"text", "media", "system"}
    notes = runner.invoke(cli, ["notes", "--jsonl", "-w", str(example_workspace.root)])
    note_rows = [json.loads(line) for line in notes.output.splitlines()]
    assert len(note_rows) == 8
    assert all({"id", "source", "title", "path", "text"} <= set(r) for r in note_rows)


def test_build_targets_are_only_the_owners_words(example_workspace, tokenizer_dir: Path) -> None:
    from selftune.dataset import run_build

    example_workspace.config.train.base = str(tokenizer_dir)
    info, dataset_id = run_build(example_workspace)
    folder = example_workspace.datasets_dir / dataset_id
    with example_workspace.open_store() as store:
        mine = "\n".join(m.text for m in store.messages() if m.is_me)
    records = [json.loads(line) for line in (folder / "train.jsonl").read_text().splitlines()]
    chats = [r for r in records if "messages" in r]
    assert chats and any("text" in r for r in records)
    for record in chats:
        assert record["messages"][0]["role"] == "system"
        for message in record["messages"]:
            if message["role"] == "assistant":
                for line in message["content"].split("\n"):
                    assert line in mine
    assert info["train"]["examples"] == len(records)
    assert info["valid"]["examples"] > 0
    assert (folder / "card.md").read_text().startswith("# Dataset card")


def test_training_smoke_changes_the_adapter_and_lowers_the_loss(
    example_workspace, tiny_model_dir: Path
) -> None:
    import torch
    from safetensors.torch import load_file

    from selftune.dataset import run_build
    from selftune.training.trainer import train

    example_workspace.config.train.base = str(tiny_model_dir)
    _, dataset_id = run_build(example_workspace)
    run_dir = example_workspace.artefacts.new_run().path
    config = TrainConfig(
        base=str(tiny_model_dir),
        max_steps=12,
        learning_rate=3e-3,
        batch_size=8,
        eval_every=6,
        lora_dropout=0.0,
    )
    summary = train(example_workspace.datasets_dir / dataset_id, run_dir, config)
    assert summary["steps"] == 12
    weights = load_file(run_dir / "adapter" / "adapter_model.safetensors")
    lora_b = [w for name, w in weights.items() if "lora_B" in name]
    assert lora_b and any(torch.count_nonzero(w) > 0 for w in lora_b), (
        "LoRA B starts at zero and must move"
    )
    losses = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    train_losses = [row["loss"] for row in losses if "loss" in row]
    assert train_losses[-1] < train_losses[0]
