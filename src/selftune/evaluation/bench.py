"""The owner's own benchmark: prompts with checks, in a YAML file, run against any model.

Each case is a prompt (a message sent to the owner, or text to continue) and checks that every
candidate must pass: `contains`, `not_contains` (a string or a list: any / none of them), `regex`
(Python syntax), `not_regex`, and `judged` (a yes/no question a judge answers about the reply).
The pass rate of a case is the share of its candidates that pass every check. See
docs/writing-benchmarks.md and examples/bench.yaml.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from selftune.config import format_validation_error
from selftune.errors import ConfigError


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Check(_Strict):
    contains: str | list[str] | None = None
    not_contains: str | list[str] | None = None
    regex: str | None = None
    not_regex: str | None = None
    judged: str | None = Field(None, description="A yes/no question about the reply.")
    ignore_case: bool = True

    @field_validator("regex", "not_regex")
    @classmethod
    def _compiles(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                re.compile(value)
            except re.error as exc:
                raise ValueError(f"not a valid regular expression: {exc}") from exc
        return value

    def kind(self) -> str:
        set_fields = [
            k
            for k in ("contains", "not_contains", "regex", "not_regex", "judged")
            if getattr(self, k) is not None
        ]
        if len(set_fields) != 1:
            raise ValueError(
                "each check needs exactly one of contains, not_contains, regex, not_regex, judged"
            )
        return set_fields[0]


class Defaults(_Strict):
    mode: Literal["chat", "complete"] = "chat"
    n: int = Field(3, ge=1, le=32)
    temperature: float = Field(0.7, ge=0)
    max_tokens: int = Field(64, ge=1)
    system: str | None = None


class Case(_Strict):
    name: str
    prompt: str
    mode: Literal["chat", "complete"] | None = None
    n: int | None = Field(None, ge=1, le=32)
    system: str | None = None
    checks: list[Check] = Field(min_length=1)

    @field_validator("checks")
    @classmethod
    def _one_each(cls, checks: list[Check]) -> list[Check]:
        for check in checks:
            check.kind()
        return checks


class Bench(_Strict):
    defaults: Defaults = Field(default_factory=Defaults)
    cases: list[Case] = Field(min_length=1)


def load_bench(path: Path) -> Bench:
    """Read and check a benchmark file; all problems are reported at once, each with its place."""
    if not path.exists():
        raise ConfigError(f"{path} does not exist; start from examples/bench.yaml")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from exc
    try:
        return Bench.model_validate(data or {})
    except ValidationError as exc:
        raise ConfigError(format_validation_error(exc, str(path))) from exc


def run_check(check: Check, reply: str, judge: Any = None, prompt: str = "") -> bool:
    kind = check.kind()
    flags = re.IGNORECASE if check.ignore_case else 0
    value = getattr(check, kind)
    if kind in ("contains", "not_contains"):
        needles = [value] if isinstance(value, str) else value
        hay = reply.lower() if check.ignore_case else reply
        found = any((n.lower() if check.ignore_case else n) in hay for n in needles)
        return found if kind == "contains" else not found
    if kind in ("regex", "not_regex"):
        found = re.search(value, reply, flags) is not None
        return found if kind == "regex" else not found
    if judge is None:
        raise ConfigError("this benchmark has judged checks but no judge is available")
    return judged(judge, value, prompt, reply)


def judged(judge: Any, question: str, prompt: str, reply: str) -> bool:
    from selftune.evaluation.judge import JUDGE_SYSTEM

    text = f"Message: {prompt}\n\nReply: {reply}\n\n{question} Answer Yes or No."
    messages = [{"role": "system", "content": JUDGE_SYSTEM}, {"role": "user", "content": text}]
    if hasattr(judge, "option_probabilities"):
        from selftune.engines.base import render_chat

        yes, _ = judge.option_probabilities(render_chat(judge.tokenizer, messages), ["Yes", "No"])
        return yes >= 0.5
    answer = judge.chat(messages, n=1, temperature=0, max_tokens=3)[0]
    return answer.strip().lower().startswith("yes")


def run_bench(
    bench: Bench, model: Any, default_system: str, judge: Any = None, seed: int = 0
) -> dict[str, Any]:
    """Generate each case's candidates with `model` and check them; returns pass rates."""
    from tqdm import tqdm

    d = bench.defaults
    rows = []
    for i, case in enumerate(tqdm(bench.cases, desc="bench", leave=False)):
        mode, n = case.mode or d.mode, case.n or d.n
        if mode == "chat":
            system = case.system or d.system or default_system
            messages = [
                {"role": "system", "content": system},
                {"role": "user", "content": case.prompt},
            ]
            replies = model.chat(messages, n, d.temperature, d.max_tokens, seed + i)
        else:
            replies = [
                case.prompt + r
                for r in model.complete(case.prompt, n, d.temperature, d.max_tokens, seed + i)
            ]
        results = [[run_check(c, r, judge, case.prompt) for c in case.checks] for r in replies]
        passed = sum(all(r) for r in results)
        rows.append(
            {
                "name": case.name,
                "candidates": len(replies),
                "passed": passed,
                "pass_rate": round(passed / len(replies), 4) if replies else 0.0,
                "check_pass_rates": [
                    round(sum(r[j] for r in results) / len(results), 4) if results else 0.0
                    for j in range(len(case.checks))
                ],
                "replies": replies,
            }
        )
    overall = sum(r["pass_rate"] for r in rows) / len(rows)
    return {"cases": rows, "pass_rate": round(overall, 4)}
