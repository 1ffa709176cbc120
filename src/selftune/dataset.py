"""Build a training dataset from the store: chat sessions with the owner's turns as targets, notes as
completion text, and a chronological held-out split.

Output (under datasets/<id>/): `train.jsonl` and `valid.jsonl` in the standard shapes
(`{"messages": [...]}` for chats, `{"text": ...}` for notes) that TRL, Axolotl, Unsloth and
LLaMA-Factory read as-is; `*.meta.jsonl` beside them (same order: source, conversation, time);
`dataset.json` (the card as data) and `card.md` (the card to read).
"""

from __future__ import annotations

import hashlib
import json
import re
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from itertools import groupby
from pathlib import Path
from typing import Any

from selftune import __version__
from selftune.config import BuildConfig
from selftune.errors import SelftuneError
from selftune.records import Message, Note
from selftune.sessions import Turn, merge_turns, split_sessions
from selftune.store import Store

TokenCounter = Callable[[str], int]


@dataclass
class Example:
    record: dict[str, Any]  # {"messages": [...]} or {"text": ...}
    source: str
    conversation: str
    start: datetime | None
    tokens: int = 0

    def meta(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "conversation": self.conversation,
            "start": self.start.isoformat() if self.start else None,
            "tokens": self.tokens,
        }


@dataclass
class Dataset:
    train: list[Example] = field(default_factory=list)
    valid: list[Example] = field(default_factory=list)
    filtered: Counter[str] = field(default_factory=Counter)
    first: datetime | None = None
    last: datetime | None = None
    input_hash: str = ""


def chat_examples(
    messages: list[Message],
    config: BuildConfig,
    owner: str,
    count_tokens: TokenCounter,
    filtered: Counter[str],
) -> list[list[Example]]:
    """Training examples of one conversation, grouped by session (a session is never split
    between train and validation)."""
    if not messages:
        return []
    first = messages[0]
    group = (
        first.conversation_kind == "group"
        or len({m.author for m in messages if not m.is_me and m.author}) > 1
    )
    system = config.system_prompt.format(
        owner=owner, platform=first.source.capitalize(), conversation=first.conversation_title
    )
    out = []
    for session in split_sessions(messages, timedelta(minutes=config.session_gap_minutes)):
        turns = merge_turns(session)
        if not any(t.is_me for t in turns):
            filtered["session without your turns"] += 1
            continue
        examples = [
            Example(
                {"messages": [{"role": "system", "content": system}, *window]},
                first.source,
                first.conversation_id,
                session[0].timestamp,
            )
            for window in _windows(turns, config, group, count_tokens)
        ]
        for ex in examples:
            ex.tokens = sum(count_tokens(m["content"]) for m in ex.record["messages"])
        out.append(examples)
    return out


def _as_messages(turns: list[Turn], group: bool) -> list[dict[str, str]]:
    """Chat messages with strict user/assistant alternation: others' consecutive turns merge into
    one user message, with speaker names in group chats."""
    out: list[dict[str, str]] = []
    for turn in turns:
        role = "assistant" if turn.is_me else "user"
        text = f"{turn.author}: {turn.text}" if group and not turn.is_me else turn.text
        if out and out[-1]["role"] == role:
            out[-1]["content"] += "\n" + text
        else:
            out.append({"role": role, "content": text})
    return out


def _windows(
    turns: list[Turn], config: BuildConfig, group: bool, count_tokens: TokenCounter
) -> list[list[dict[str, str]]]:
    """Cut a session's turns into examples within the turn and token limits; each window ends on
    an owner turn, so every example has a target and no target is trained twice."""
    windows = []
    start = 0
    while start < len(turns):
        end, tokens = start, 0
        while end < len(turns) and end - start < config.max_context_turns:
            cost = count_tokens(turns[end].text) + 4
            if tokens + cost > config.max_example_tokens and end > start:
                break
            tokens += cost
            end += 1
        last_mine = max((i for i in range(start, end) if turns[i].is_me), default=None)
        if last_mine is None:
            # no owner turn fits: move on to the next window without emitting anything
            start = end
            continue
        windows.append(_as_messages(turns[start : last_mine + 1], group))
        start = last_mine + 1  # the incoming turns after it open the next window
    return windows


PARAGRAPH_BREAK = re.compile(r"\n\s*\n(?=\S)")


def note_examples(note: Note, config: BuildConfig, count_tokens: TokenCounter) -> list[Example]:
    """Completion chunks of one note: title first, cut only where a top-level block ends."""
    body = note.text.strip()
    if not body:
        return []
    header = f"# {note.title}\n\n" if not body.startswith("# ") else ""
    pieces = PARAGRAPH_BREAK.split(body)
    chunks, current = [], ""
    for piece in pieces:
        candidate = f"{current}\n\n{piece}" if current else piece
        if current and count_tokens(header + candidate) > config.note_chunk_tokens:
            chunks.append(current)
            current = piece
        else:
            current = candidate
    if current:
        chunks.append(current)
    when = note.created or note.modified
    return [
        Example(
            {"text": header + chunk},
            f"notes:{note.source}",
            note.id,
            when,
            count_tokens(header + chunk),
        )
        for chunk in chunks
    ]


def _split_groups(
    groups: list[list[Example]], fraction: float
) -> tuple[list[Example], list[Example]]:
    """The most recent `fraction` of groups (sessions, notes) is held out, at least one if any."""
    ordered = sorted(
        groups, key=lambda g: (g[0].start.isoformat() if g[0].start else "", g[0].conversation)
    )
    if len(ordered) < 2 or fraction == 0:
        return [e for g in ordered for e in g], []
    n_valid = max(1, round(len(ordered) * fraction))
    train = [e for g in ordered[:-n_valid] for e in g]
    valid = [e for g in ordered[-n_valid:] for e in g]
    return train, valid


def build_dataset(
    store: Store, config: BuildConfig, owner: str, count_tokens: TokenCounter
) -> Dataset:
    """Turn the store into a Dataset (nothing is written)."""
    data = Dataset()
    hasher = hashlib.sha256()
    excluded = store.excluded_people()
    by_source: dict[str, list[list[Example]]] = {}
    for _, conversation in groupby(store.messages(), key=lambda m: m.conversation_id):
        messages = list(conversation)
        for m in messages:
            hasher.update(m.id.encode())
        if any(m.author in excluded for m in messages):
            data.filtered["conversation with an excluded contact"] += 1
            continue
        text_messages = [m for m in messages if m.kind == "text"]
        if text_messages:
            data.first = min(filter(None, (data.first, text_messages[0].timestamp)))
            data.last = max(filter(None, (data.last, text_messages[-1].timestamp)))
        groups = chat_examples(messages, config, owner, count_tokens, data.filtered)
        by_source.setdefault(messages[0].source, []).extend(g for g in groups if g)
    if config.include_notes:
        for note in store.notes():
            hasher.update(note.id.encode() + note.text.encode())
            examples = note_examples(note, config, count_tokens)
            if not examples:
                data.filtered["empty note"] += 1
                continue
            by_source.setdefault(f"notes:{note.source}", []).append(examples)
    for source in sorted(by_source):
        train, valid = _split_groups(by_source[source], config.valid_fraction)
        data.train += train
        data.valid += valid
    data.input_hash = hasher.hexdigest()[:16]
    if not data.train:
        raise SelftuneError(
            "the store gave no training examples: ingest some exports first, and make sure your "
            "messages are marked as yours (`me:` in twin.yaml)"
        )
    return data


def card(data: Dataset, config: BuildConfig, base: str) -> dict[str, Any]:
    """The dataset card as data: counts by source and split, tokens, dates, filters, settings."""

    def summary(examples: list[Example]) -> dict[str, Any]:
        sources = Counter(e.source for e in examples)
        tokens = Counter()
        for e in examples:
            tokens[e.source] += e.tokens
        return {
            "examples": len(examples),
            "tokens": sum(tokens.values()),
            "by_source": {
                s: {"examples": sources[s], "tokens": tokens[s]} for s in sorted(sources)
            },
        }

    return {
        "train": summary(data.train),
        "valid": summary(data.valid),
        "dates": {
            "first": data.first.isoformat() if data.first else None,
            "last": data.last.isoformat() if data.last else None,
        },
        "filtered": dict(sorted(data.filtered.items())),
        "settings": config.model_dump(),
        "tokenizer": base,
        "input_hash": data.input_hash,
        "selftune_version": __version__,
    }


def card_markdown(info: dict[str, Any], dataset_id: str) -> str:
    lines = [f"# Dataset {dataset_id}", ""]
    lines.append(
        f"Messages from {info['dates']['first'] or '-'} to {info['dates']['last'] or '-'}."
    )
    lines += ["", "| split | source | examples | tokens |", "|---|---|---:|---:|"]
    for split in ("train", "valid"):
        for source, row in info[split]["by_source"].items():
            lines.append(f"| {split} | {source} | {row['examples']} | {row['tokens']} |")
        lines.append(f"| {split} | **all** | {info[split]['examples']} | {info[split]['tokens']} |")
    if info["filtered"]:
        lines += ["", "Left out:", ""]
        lines += [f"- {reason}: {count}" for reason, count in info["filtered"].items()]
    lines += ["", f"Input hash `{info['input_hash']}`, selftune {info['selftune_version']}.", ""]
    return "\n".join(lines)


def write_dataset(data: Dataset, folder: Path, info: dict[str, Any]) -> None:
    for split, examples in (("train", data.train), ("valid", data.valid)):
        with (folder / f"{split}.jsonl").open("w", encoding="utf-8") as fh:
            for e in examples:
                fh.write(json.dumps(e.record, ensure_ascii=False) + "\n")
        with (folder / f"{split}.meta.jsonl").open("w", encoding="utf-8") as fh:
            for e in examples:
                fh.write(json.dumps(e.meta(), ensure_ascii=False) + "\n")
    (folder / "dataset.json").write_text(json.dumps(info, indent=2, ensure_ascii=False) + "\n")
    (folder / "card.md").write_text(card_markdown(info, folder.name), encoding="utf-8")


def read_split(folder: Path, split: str) -> list[dict[str, Any]]:
    """Records of train.jsonl or valid.jsonl, each with its meta under '_meta'."""
    path = folder / f"{split}.jsonl"
    if not path.exists():
        raise SelftuneError(f"{path} is missing; rebuild the dataset with `selftune build`")
    meta_path = folder / f"{split}.meta.jsonl"
    metas = meta_path.read_text(encoding="utf-8").splitlines() if meta_path.exists() else []
    out = []
    for i, line in enumerate(path.read_text(encoding="utf-8").splitlines()):
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            raise SelftuneError(f"{path}:{i + 1}: not valid JSON ({exc.msg})") from exc
        if "messages" not in record and "text" not in record:
            raise SelftuneError(f"{path}:{i + 1}: expected a 'messages' or a 'text' field")
        record["_meta"] = json.loads(metas[i]) if i < len(metas) else {}
        out.append(record)
    return out
