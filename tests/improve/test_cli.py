"""The improve commands end to end on the tiny model: amplify → review/pick/rate → rank."""

from __future__ import annotations

import json
import sqlite3

from click.testing import CliRunner

from selftune.cli import cli

from .conftest import add_picks


def run(ws, *args, input=None):
    result = CliRunner().invoke(cli, [*args, "--workspace", str(ws.root)], input=input)
    return result


def test_amplify_review_pick_and_rate_from_the_command_line(improve_ws):
    ws = improve_ws
    ws.config_path.write_text(
        ws.config_path.read_text().replace("tag_prefix: ''", "tag_prefix: '#[[twin says]] '")
    )
    out = run(ws, "amplify", "-n", "3", "--max-tokens", "6", "--limit", "4", "--json")
    assert out.exit_code == 0, out.output
    items = json.loads(out.stdout)
    assert len(items) == 4 and all(len(i["candidates"]) == 3 for i in items)
    first, second, third, fourth = (i["sample_id"] for i in items)

    # the interactive review: keep [2] of the first, reject all of the second, skip, quit
    out = run(ws, "review", input="2rsq")
    assert out.exit_code == 0, out.output
    assert "kept [2]: #[[twin says]] " in out.output and "rejected all" in out.output
    db = sqlite3.connect(ws.store_path)
    assert db.execute("SELECT picked FROM samples WHERE id = ?", (first,)).fetchone()[0] == 1
    assert (
        db.execute("SELECT count(*) FROM ratings WHERE sample_id = ?", (second,)).fetchone()[0] == 3
    )

    out = run(ws, "pick", str(third), "1", "--edited", "righto — sunday x")
    assert out.exit_code == 0 and out.stdout.strip() == "#[[twin says]] righto — sunday x"
    out = run(ws, "rate", str(fourth), "3", "-1")
    assert out.exit_code == 0, out.output
    assert db.execute(
        "SELECT candidate, rating FROM ratings WHERE sample_id = ?", (fourth,)
    ).fetchall() == [(2, -1)]

    # bad picks: a clear error, exit 1, nothing written
    for args in (
        ["pick", "999", "1"],
        ["pick", str(fourth), "4"],
        ["rate", str(fourth), "0", "+1"],
    ):
        out = run(ws, *args)
        assert out.exit_code == 1 and "Error:" in out.output
    assert db.execute("SELECT count(*) FROM ratings").fetchone()[0] == 4
    assert db.execute("SELECT picked FROM samples WHERE id = ?", (fourth,)).fetchone()[0] is None


def test_distill_with_too_few_picks_says_so_and_rank_trains(improve_ws):
    out = run(improve_ws, "distill")
    assert out.exit_code == 1 and "too few picks" in out.output and "sft needs 4" in out.output
    add_picks(improve_ws, 12)
    out = run(improve_ws, "rank", "--train")
    assert out.exit_code == 0, out.output
    assert "held-out pairs: 3, accuracy 1.0" in out.output
    assert "(authorship alone " in out.output  # the ranker beside the authorship score alone
    assert (improve_ws.root / "ranker" / "ranker.json").exists()
