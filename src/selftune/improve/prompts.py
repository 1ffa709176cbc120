"""Prompts for `amplify`: from a file the owner gives, or from their own material in the training
split only (never the held-out split the evaluation scores).

From the training split come three kinds: a message the owner was sent (the chat up to one of
their replies), the beginning of one of their notes, and a list they started ("Here is a list of
ideas for my next tattoo: 1."). Each prompt keeps the owner's real continuation (`real`) for the
benchmark's simulated owner; it is never stored with the sample.
"""

from __future__ import annotations

import json
import random
import re
from pathlib import Path
from typing import Any

from selftune.errors import SelftuneError
from selftune.picks import Prompt
from selftune.twin import Twin

MAX_CONTEXT_TURNS = 8  # turns before the reply kept in a chat prompt (the system prompt too)
NOTE_PROMPT_CHARS = 240
LIST_ITEM = re.compile(r"^(\s*)(?:[-*+]|\d+[.)])\s+", re.MULTILINE)


def chat_prompts(record: dict[str, Any], source: str) -> list[Prompt]:
    """A prompt for each of the owner's replies that answers someone: the chat up to it."""
    messages = record["messages"]
    system = messages[:1] if messages and messages[0]["role"] == "system" else []
    out = []
    for i, m in enumerate(messages):
        if m["role"] != "assistant" or i == 0 or messages[i - 1]["role"] != "user":
            continue
        if not m["content"].strip():
            continue
        turns = [t for t in messages[len(system) : i]][-MAX_CONTEXT_TURNS:]
        while turns and turns[0]["role"] == "assistant":
            turns = turns[1:]
        if turns:
            out.append(Prompt("chat", messages=system + turns, real=m["content"], source=source))
    return out


def note_prompts(record: dict[str, Any], source: str) -> list[Prompt]:
    """The beginning of a note (its first lines, cut at a line end), and the start of each list
    it holds (the lines before the first item, and that item's marker)."""
    text = record["text"]
    out = []
    lines = text.split("\n")
    head, size = [], 0
    for line in lines:
        if head and size + len(line) > NOTE_PROMPT_CHARS:
            break
        head.append(line)
        size += len(line) + 1
        if len(head) >= 2 and size > NOTE_PROMPT_CHARS // 3:
            break
    begin = "\n".join(head) + "\n"
    if len(begin) < len(text) - 8:
        out.append(Prompt("text", text=begin, real=text[len(begin) :], source=source))
    first_item = LIST_ITEM.search(text)
    if first_item and first_item.start() > 0:
        start = text[: first_item.end()]
        rest = text[first_item.end() :]
        if start != begin and rest.strip():
            out.append(Prompt("text", text=start, real=rest, source=source))
    return out


def training_prompts(train: list[dict[str, Any]], limit: int, seed: int = 0) -> list[Prompt]:
    """Up to `limit` prompts from training-split records, chosen at random (seeded), about three
    chat prompts for every note prompt when both exist."""
    chats: list[Prompt] = []
    notes: list[Prompt] = []
    for record in train:
        source = record.get("_meta", {}).get("source", "unknown")
        if "messages" in record:
            chats += chat_prompts(record, source)
        elif "text" in record:
            notes += note_prompts(record, source)
    rng = random.Random(f"amplify-{seed}")
    rng.shuffle(chats)
    rng.shuffle(notes)
    want_notes = min(len(notes), max(limit // 4, 1 if notes else 0), limit)
    chosen = chats[: limit - want_notes]
    chosen += notes[: limit - len(chosen)]
    rng.shuffle(chosen)
    return chosen


def file_prompts(path: Path, twin: Twin) -> list[Prompt]:
    """Prompts of a file: one text prompt per non-empty line, or JSONL (`.jsonl`, or lines that
    start with `{`) of {"prompt": text} or {"messages": [...]} (chat; the twin's system prompt is
    added when there is none)."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise SelftuneError(f"cannot read prompts from {path}: {exc.strerror}") from exc
    as_json = path.suffix == ".jsonl" or any(line.lstrip().startswith("{") for line in lines[:1])
    out = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        if not as_json:
            out.append(Prompt("text", text=line.replace("\\n", "\n")))
            continue
        out.append(_json_prompt(line, f"{path}:{number}", twin))
    if not out:
        raise SelftuneError(f"{path} holds no prompts; write one per line")
    return out


def _json_prompt(line: str, where: str, twin: Twin) -> Prompt:
    try:
        item = json.loads(line)
    except json.JSONDecodeError as exc:
        raise SelftuneError(f"{where}: not valid JSON ({exc.msg})") from exc
    if not isinstance(item, dict):
        raise SelftuneError(f'{where}: expected {{"prompt": ...}} or {{"messages": [...]}}')
    if isinstance(item.get("prompt"), str) and item["prompt"].strip():
        return Prompt("text", text=item["prompt"])
    messages = item.get("messages")
    if not isinstance(messages, list) or not messages:
        raise SelftuneError(f'{where}: expected a non-empty "prompt" text or "messages" list')
    for i, m in enumerate(messages):
        if not isinstance(m, dict) or m.get("role") not in ("system", "user", "assistant"):
            raise SelftuneError(
                f"{where}: message {i} needs a role of system, user or assistant and a content"
            )
        if not isinstance(m.get("content"), str):
            raise SelftuneError(f"{where}: message {i} has no text content")
        if m["role"] == "system" and i > 0:
            raise SelftuneError(f"{where}: system message at index {i}; it must come first")
    if messages[-1]["role"] == "assistant":
        raise SelftuneError(f"{where}: the last message is the twin's own; end on a user message")
    clean = [{"role": m["role"], "content": m["content"]} for m in messages]
    return Prompt("chat", messages=twin.chat_messages(clean))
