"""The dataset as other trainers take it: one shape per file, a training chat template with
`{% generation %}` markers that renders as the base's own, examples that start at a user turn
when asked (LLaMA-Factory), and docs/train-elsewhere.md's TRL recipe run for 2 steps."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def rows(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def build(ws, base: Path, **settings) -> Path:  # type: ignore[no-untyped-def]
    from selftune.dataset import run_build

    ws.config.train.base = str(base)
    for key, value in settings.items():
        setattr(ws.config.build, key, value)
    _, dataset_id = run_build(ws)
    return ws.datasets_dir / dataset_id


def llamafactory_accepts(messages: list[dict]) -> bool:
    """LLaMA-Factory's sharegpt rule: after an optional system turn, user and assistant
    alternate, starting with user and ending with assistant."""
    turns = messages[1:] if messages and messages[0]["role"] == "system" else messages
    if not turns or len(turns) % 2:
        return False
    return all(m["role"] == ("user", "assistant")[i % 2] for i, m in enumerate(turns))


def test_one_shape_per_file_and_a_template_that_marks_your_turns(example_workspace, tokenizer_dir):
    from transformers import AutoTokenizer

    folder = build(example_workspace, tokenizer_dir)
    for split in ("train", "valid"):
        mixed = rows(folder / f"{split}.jsonl")
        chat, notes = rows(folder / f"{split}.chat.jsonl"), rows(folder / f"{split}.notes.jsonl")
        assert all("messages" in r for r in chat) and all("text" in r for r in notes)
        assert chat + notes == sorted(mixed, key=lambda r: "messages" not in r)
    tokenizer = AutoTokenizer.from_pretrained(tokenizer_dir)
    marked = (folder / "chat_template.jinja").read_text()
    assert "{% generation %}" in marked
    for record in rows(folder / "train.chat.jsonl")[:40]:
        ours = tokenizer.apply_chat_template(record["messages"], tokenize=False)
        theirs = tokenizer.apply_chat_template(
            record["messages"], tokenize=False, chat_template=marked
        )
        assert theirs == ours
        out = tokenizer.apply_chat_template(
            record["messages"],
            chat_template=marked,
            return_dict=True,
            return_assistant_tokens_mask=True,
        )
        trained = tokenizer.decode(
            [t for t, m in zip(out["input_ids"], out["assistant_masks"], strict=True) if m]
        )
        replies = [m["content"] for m in record["messages"] if m["role"] == "assistant"]
        assert trained == "".join(f"{r}<|im_end|>\n" for r in replies)


def test_start_with_user_makes_every_chat_example_begin_with_a_user_turn(
    example_workspace, tokenizer_dir
):
    folder = build(example_workspace, tokenizer_dir)
    before = rows(folder / "train.chat.jsonl")
    refused = [r for r in before if not llamafactory_accepts(r["messages"])]
    assert refused, "the example person sometimes writes first; those examples are the point"
    strict = build(example_workspace, tokenizer_dir, start_with_user=True)
    after = rows(strict / "train.chat.jsonl")
    assert all(llamafactory_accepts(r["messages"]) for r in after)
    card = json.loads((strict / "dataset.json").read_text())
    cut = card["filtered"].get("opening turns of yours cut (start_with_user)", 0)
    dropped = card["filtered"].get("no user turn before your reply (start_with_user)", 0)
    assert cut + dropped > 0
    assert len(after) == len(before) - dropped
    assert len(rows(strict / "train.meta.jsonl")) == len(rows(strict / "train.jsonl"))


def test_trl_recipe_in_the_docs_runs(example_workspace, tokenizer_dir, tiny_model_dir, tmp_path):
    pytest.importorskip("trl")
    folder = build(example_workspace, tokenizer_dir)
    doc = (REPO / "docs" / "train-elsewhere.md").read_text()
    section = doc.split("## TRL", 1)[1]
    code = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    assert "assistant_only_loss=True" in code and "chat_template.jinja" in code
    code = (
        code.replace('folder = "mytwin/datasets/20261123-101500"', f"folder = {str(folder)!r}")
        .replace('"HuggingFaceTB/SmolLM2-135M-Instruct"', repr(str(tiny_model_dir)))
        .replace('output_dir="out"', f"output_dir={str(tmp_path / 'out')!r}")
        .replace("num_train_epochs=3", "max_steps=2, report_to='none', bf16=False, use_cpu=True")
    )
    scope: dict = {}
    exec(compile(code, "train-elsewhere.md", "exec"), scope)  # noqa: S102 (the doc's own recipe)
    history = scope["trainer"].state.log_history
    assert scope["trainer"].state.global_step == 2
    assert any("train_loss" in h for h in history)
