"""End to end with the real embedded model (SmolLM2-135M-Instruct): a handful of training steps
on the bundled example person, then eval and sample through the CLI."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from selftune.cli import cli

pytestmark = pytest.mark.slow


def test_cli_pipeline_on_the_embedded_model(example_workspace) -> None:
    runner = CliRunner()
    ws = ["-w", str(example_workspace.root)]

    def run(*args: str) -> str:
        result = runner.invoke(cli, [*args, *ws], catch_exceptions=False)
        assert result.exit_code == 0, result.output
        return result.stdout  # progress bars go to stderr

    run("build")
    run("train", "--max-steps", "8", "--batch-size", "2", "--lr", "5e-4")
    report = json.loads(run("eval", "--json"))
    ppl = report["perplexity"]
    assert ppl["base"] > 1 and ppl["tuned"] > 1
    # a few steps on her own words must already move held-out perplexity down
    assert ppl["tuned"] < ppl["base"]
    assert (example_workspace.reports_dir / report["id"] / "report.json").exists()
    samples = json.loads(
        run(
            "sample",
            "are you coming sunday?",
            "--chat",
            "-n",
            "2",
            "--max-tokens",
            "12",
            "--seed",
            "1",
            "--json",
        )
    )
    assert len(samples) == 2 and all(isinstance(s, str) for s in samples)
    numbered = run("sample", "My bees", "-n", "2", "--max-tokens", "8", "--seed", "1")
    assert "[1] My bees" in numbered and "[2] My bees" in numbered
