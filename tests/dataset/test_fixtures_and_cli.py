"""Every ingest fixture builds into a dataset whose card is right; the CLI's dry run writes
nothing."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from click.testing import CliRunner

from selftune.cli import cli
from selftune.ingest.importer import ingest_paths
from selftune.workspace import init_workspace

from .test_build import check_card

FIXTURES = Path(__file__).parent.parent / "fixtures"
ME = ("Mags", "Mags Okonkwo")
# what each fixture must give: training sources (held-out ones may be empty for tiny fixtures)
EXPECTED = {
    "discord": {"discord"},
    "email": {"email"},
    "imessage": {"imessage"},
    "instagram": {"instagram"},
    "messenger": {"messenger"},
    "obsidian": {"notes:markdown"},
    "roam": {"notes:roam"},
    "slack": {"slack"},
    "telegram": {"telegram"},
    "twitter": {"twitter"},
    "whatsapp": {"whatsapp"},
}


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_every_ingest_fixture_gives_a_right_card(name, tmp_path, tokenizer_dir):
    from selftune.dataset import run_build

    ws = init_workspace(tmp_path / "twin", list(ME))
    ws.config.train.base = str(tokenizer_dir)
    path = FIXTURES / name
    if name == "imessage":
        path = tmp_path / "chat.db"
        db = sqlite3.connect(path)
        db.executescript((FIXTURES / "imessage" / "chat.sql").read_text())
        db.commit()
        db.close()
    with ws.open_store() as store:
        ingest_paths(store, [path], ME)
        messages = list(store.messages())
    info, dataset_id = run_build(ws)
    info = check_card(ws.datasets_dir / dataset_id)
    sources = set(info["train"]["by_source"]) | set(info["valid"]["by_source"])
    assert sources == EXPECTED[name]
    assert info["inputs"]["messages"] == len(messages)
    mine = "\n".join(m.text for m in messages if m.is_me)
    for split in ("train", "valid"):
        text = (ws.datasets_dir / dataset_id / f"{split}.jsonl").read_text()
        for other in {m.text for m in messages if m.is_me is False and len(m.text) > 12}:
            if other not in mine:
                assert f'"assistant", "content": "{other}' not in text


def test_dry_run_prints_the_card_and_writes_nothing(example_workspace, tokenizer_dir):
    ws = example_workspace
    config_text = ws.config_path.read_text().replace("base: embedded", f"base: {tokenizer_dir}")
    ws.config_path.write_text(config_text)
    result = CliRunner().invoke(cli, ["build", "--dry-run", "-w", str(ws.root)])
    assert result.exit_code == 0, result.output
    assert "dry run" in result.output and "| train | whatsapp |" in result.output
    assert not any(ws.datasets_dir.iterdir())
    result = CliRunner().invoke(cli, ["build", "-w", str(ws.root), "--split", "conversation"])
    assert result.exit_code == 0, result.output
    assert len(list(ws.datasets_dir.iterdir())) == 1
