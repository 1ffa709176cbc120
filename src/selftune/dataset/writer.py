"""The dataset card (`dataset.json` as data, `card.md` to read) and writing a dataset folder.

Besides `train.jsonl`/`valid.jsonl` (chat and notes examples mixed, as `selftune train` reads
them) the folder holds one file per shape (`*.chat.jsonl`, `*.notes.jsonl`) for trainers that
want one, and `chat_template.jinja`: the base's template with `{% generation %}` markers.

The card says what went in and what was left out: examples and tokens per split, source and kind,
dates, the fixed probe set, counts per filter reason and per PII type, the settings (private
facts are counted, never shown), the tokenizer, and hashes of the input and of the files.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING, Any

from selftune import __version__
from selftune.config import BuildConfig

if TYPE_CHECKING:
    from selftune.dataset.examples import Dataset, Example

SPLITS = ("train", "valid")


TRAINING_TEMPLATE = "chat_template.jinja"
CUT_OPENING = "opening turns of yours cut (start_with_user)"
NO_USER_TURN = "no user turn before your reply (start_with_user)"


def serialise(data: Dataset, tokenizer: Any = None) -> dict[str, str]:
    """File name → content of the JSONL files, per split: all examples, chat only, notes only,
    and the meta lines; with `tokenizer`, the training chat template too (the same data gives
    the same bytes)."""
    out = {}
    for split in SPLITS:
        examples: list[Example] = getattr(data, split)

        def lines(rows: list[Example]) -> str:
            return "".join(json.dumps(e.record, ensure_ascii=False) + "\n" for e in rows)

        out[f"{split}.jsonl"] = lines(examples)
        out[f"{split}.chat.jsonl"] = lines([e for e in examples if "messages" in e.record])
        out[f"{split}.notes.jsonl"] = lines([e for e in examples if "messages" not in e.record])
        out[f"{split}.meta.jsonl"] = "".join(
            json.dumps(e.meta(), ensure_ascii=False) + "\n" for e in examples
        )
    if tokenizer is not None and getattr(tokenizer, "chat_template", None):
        from selftune.errors import SelftuneError
        from selftune.templates import generation_template

        # a template that cannot be taken apart gets none: TRL then needs one of its own
        with contextlib.suppress(SelftuneError):
            out[TRAINING_TEMPLATE] = generation_template(tokenizer)
    return out


def start_at_user_turn(data: Dataset) -> None:
    """Make every chat example begin (after its system message) with a user turn, as strict
    templates and LLaMA-Factory's converter require: the owner's opening turns are cut, and an
    example with no user turn before a reply of the owner's is left out. Both are counted."""
    for split in SPLITS:
        kept = []
        for e in getattr(data, split):
            messages = e.record.get("messages")
            if messages is None:
                kept.append(e)
                continue
            head = messages[:1] if messages and messages[0]["role"] == "system" else []
            rest = messages[len(head) :]
            first = next((i for i, m in enumerate(rest) if m["role"] == "user"), None)
            if first is None or all(m["role"] != "assistant" for m in rest[first:]):
                data.filtered[NO_USER_TURN] += 1
                continue
            if first:
                data.filtered[CUT_OPENING] += first
                e.record = {**e.record, "messages": head + rest[first:]}
            kept.append(e)
        setattr(data, split, kept)


def content_hash(files: dict[str, str]) -> str:
    digest = hashlib.sha256()
    for name in sorted(files):
        digest.update(name.encode() + b"\0" + files[name].encode() + b"\0")
    return digest.hexdigest()[:16]


def _summary(examples: list[Example]) -> dict[str, Any]:
    count: Counter[str] = Counter()
    tokens: Counter[str] = Counter()
    kinds: Counter[str] = Counter()
    for e in examples:
        count[e.source] += 1
        tokens[e.source] += e.tokens
        kinds[e.kind] += 1
    starts = sorted(e.start.isoformat() for e in examples if e.start)
    return {
        "examples": len(examples),
        "tokens": sum(tokens.values()),
        "by_kind": dict(sorted(kinds.items())),
        "by_source": {s: {"examples": count[s], "tokens": tokens[s]} for s in sorted(count)},
        "first": starts[0] if starts else None,
        "last": starts[-1] if starts else None,
    }


def card(
    data: Dataset, config: BuildConfig, base: str, files: dict[str, str] | None = None
) -> dict[str, Any]:
    """The dataset card as data."""
    files = files if files is not None else serialise(data)
    settings = config.model_dump()
    settings["private_facts"] = f"{len(config.private_facts)} strings (not shown)"
    probes = Counter(e.source for e in data.valid if e.probe)
    return {
        "train": _summary(data.train),
        "valid": _summary(data.valid),
        "probe": {"examples": sum(probes.values()), "by_source": dict(sorted(probes.items()))},
        "dates": {
            "first": data.first.isoformat() if data.first else None,
            "last": data.last.isoformat() if data.last else None,
        },
        "inputs": dict(data.inputs),
        "filtered": dict(sorted(data.filtered.items())),
        "pii": data.scrubber.report(),
        "notes_blocks_cut": data.notes_blocks_cut,
        "split": data.split,
        "settings": settings,
        "tokenizer": base,
        "input_hash": data.input_hash,
        "content_hash": content_hash(files),
        "selftune_version": __version__,
    }


def card_markdown(info: dict[str, Any], dataset_id: str | None = None) -> str:
    title = f"# Dataset {dataset_id}" if dataset_id else "# Dataset card"
    lines = [title, ""]
    inputs = info.get("inputs", {})
    lines.append(
        f"From {inputs.get('messages', 0)} messages in {inputs.get('conversations', 0)} "
        f"conversations and {inputs.get('notes', 0)} notes; messages from "
        f"{info['dates']['first'] or '-'} to {info['dates']['last'] or '-'}."
    )
    lines += ["", "| split | source | examples | tokens |", "|---|---|---:|---:|"]
    for split in SPLITS:
        for source, row in info[split]["by_source"].items():
            lines.append(f"| {split} | {source} | {row['examples']} | {row['tokens']} |")
        lines.append(f"| {split} | **all** | {info[split]['examples']} | {info[split]['tokens']} |")
    valid = info["valid"]
    if valid["examples"]:
        dates = f"written {valid['first']} to {valid['last']}" if valid["first"] else "no dates"
        lines += ["", f"Held out: {valid['examples']} examples ({dates}); "
                  f"{info['probe']['examples']} of them are the fixed probe set."]  # fmt: skip
    split = info.get("split") or {}
    if split:
        lines += ["", f"How the split was made: {split['method']}.", ""]
        for source, row in split["by_source"].items():
            order = ", ".join(f"{n} by {how}" for how, n in row["ordered_by"].items())
            lines.append(
                f"- {source}: {row['valid_tokens']} tokens held out ({row['valid_share']:.0%}, "
                f"target {row['target_tokens']}) in {row['valid_examples']} examples"
                + (f"; ordered {order}" if order else "")
            )
        for warning in split["warnings"]:
            lines += ["", f"**Warning:** {warning}."]
    if info["filtered"]:
        lines += ["", "Left out (count, reason):", ""]
        lines += [f"- {count} {reason}" for reason, count in info["filtered"].items()]
    if info["pii"]:
        lines += ["", "Scrubbed (occurrences, distinct values):", ""]
        lines += [
            f"- {kind}: {row['occurrences']} ({row['values']})" for kind, row in info["pii"].items()
        ]
    if info.get("notes_blocks_cut"):
        lines += ["", f"{info['notes_blocks_cut']} note blocks longer than a chunk were cut."]
    memory = info.get("memory") or {}
    if memory.get("enabled"):
        scope = memory.get("scope", "participants")
        reach = (
            "only conversations that everyone who sees the reply took part in"
            if scope == "participants"
            else "any conversation, whoever sees the reply"
        )
        lines += ["", f"Memory blocks: on, scope `{scope}` (a block quotes {reach})."]
    lines += [
        "",
        f"Tokenizer `{info['tokenizer']}`; input hash `{info['input_hash']}`, content hash "
        f"`{info['content_hash']}`, selftune {info['selftune_version']}.",
        "",
    ]
    return "\n".join(lines)


def write_dataset(
    data: Dataset, folder: Path, info: dict[str, Any], files: dict[str, str] | None = None
) -> dict[str, Any]:
    """Write the JSONL files, dataset.json and card.md (`info` made by `card`) into `folder`;
    returns the card. Refuses, writing nothing, if a private fact is anywhere in the files.
    `files`: what `serialise(data)` gave, when the caller already has it."""
    files = files if files is not None else serialise(data)
    for name, text in files.items():
        data.scrubber.assert_clean(text, name)
    info = {**info, "content_hash": content_hash(files)}  # examples may have been added since
    for name, text in files.items():
        (folder / name).write_text(text, encoding="utf-8")
    (folder / "dataset.json").write_text(json.dumps(info, indent=2, ensure_ascii=False) + "\n")
    (folder / "card.md").write_text(card_markdown(info), encoding="utf-8")
    return info
