"""The owner's benchmark: file checks, each check kind, pass rates with a model whose output is known."""

from __future__ import annotations

from pathlib import Path

import pytest

from selftune.errors import ConfigError
from selftune.evaluation.bench import Check, load_bench, run_bench, run_check

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "bench.yaml"


class Parrot:
    """Replies with fixed candidates; remembers what it was asked."""

    def __init__(self, replies: list[str]):
        self.replies = replies
        self.asked: list = []

    def chat(self, messages, n=1, temperature=0.8, max_tokens=48, seed=0):
        self.asked.append(messages)
        return self.replies[:n]

    def complete(self, prompt, n=1, temperature=0.8, max_tokens=48, seed=0):
        self.asked.append(prompt)
        return self.replies[:n]


def test_example_file_is_valid():
    bench = load_bench(EXAMPLE)
    assert len(bench.cases) >= 4


def test_check_kinds():
    assert run_check(Check(contains="Bees"), "the bees are fine")
    assert not run_check(Check(contains="bees", ignore_case=False), "the Bees")
    assert run_check(Check(contains=["honey", "bees"]), "bees!")
    assert run_check(Check(not_contains="as an AI"), "grand x")
    assert not run_check(Check(not_contains=["as an ai"]), "As an AI model")
    assert run_check(Check(regex=r"\bx$"), "see you x")
    assert run_check(Check(not_regex=r"[A-Z]{3}", ignore_case=False), "no shouting")
    assert not run_check(Check(not_regex=r"[A-Z]{3}"), "no shouting")  # case ignored by default


def test_judged_check_needs_a_judge():
    with pytest.raises(ConfigError, match="judge"):
        run_check(Check(judged="Is it kind?"), "yes")


def test_bad_files_report_every_problem(tmp_path: Path):
    path = tmp_path / "bench.yaml"
    path.write_text(
        "cases:\n"
        "  - name: a\n    prompt: p\n    checks: [{regex: '('}]\n"
        "  - name: b\n    prompt: p\n    checks: [{contains: x, regex: y}]\n"
        "  - name: c\n    checks: [{contains: x}]\n"
    )
    with pytest.raises(ConfigError) as err:
        load_bench(path)
    message = str(err.value)
    assert "cases.0.checks.0.regex" in message and "regular expression" in message
    assert "exactly one" in message
    assert "cases.2.prompt" in message
    with pytest.raises(ConfigError, match="does not exist"):
        load_bench(tmp_path / "missing.yaml")


def test_pass_rates(tmp_path: Path):
    path = tmp_path / "bench.yaml"
    path.write_text(
        "defaults: {n: 4}\n"
        "cases:\n"
        "  - name: says yes\n    prompt: coming thursday?\n    checks: [{regex: '\\byes\\b'}, {not_contains: AI}]\n"
        "  - name: completes\n    prompt: 'Tattoo ideas: 1.'\n    mode: complete\n    n: 2\n    checks: [{contains: 'Tattoo'}]\n"
    )
    model = Parrot(["yes, see you", "no", "yes as an AI", "yes x"])
    result = run_bench(load_bench(path), model, "You are Mags.")
    first, second = result["cases"]
    assert first["pass_rate"] == 0.5 and first["check_pass_rates"] == [0.75, 0.75]
    assert second["pass_rate"] == 1.0 and second["candidates"] == 2  # the prompt is kept
    assert result["pass_rate"] == 0.75
    assert model.asked[0][0] == {"role": "system", "content": "You are Mags."}
