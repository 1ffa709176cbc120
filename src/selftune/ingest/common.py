"""Small helpers the parsers share: reading JSON that may be truncated, times, text repair.

Flat functions, no base class: each parser stays a readable file of its own and calls these.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from selftune.errors import SelftuneError
from selftune.ingest.registry import ParseContext

BINARY_SNIFF = 8192


def looks_binary(head: bytes) -> bool:
    """True for data that is not text (NUL bytes, or mostly control bytes)."""
    if b"\x00" in head:
        return True
    if not head:
        return False
    control = sum(1 for b in head if b < 9 or 13 < b < 32)
    return control / len(head) > 0.05


def read_head(path: Path, size: int = 4096) -> str:
    """The first `size` bytes of a file as text ('' for binary files)."""
    with path.open("rb") as fh:
        head = fh.read(size)
    if looks_binary(head):
        return ""
    return head.decode("utf-8-sig", errors="replace")


def load_json(path: Path, ctx: ParseContext, text: str | None = None) -> Any:
    """Parse a JSON file. A truncated or damaged file is reported (with line and column) and
    everything before the damage is still returned, so the well-formed part still imports."""
    if text is None:
        raw = path.read_bytes()
        if looks_binary(raw[:BINARY_SNIFF]):
            raise SelftuneError(f"{path}: a binary file, not JSON")
        text = raw.decode("utf-8-sig", errors="replace")
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        where = f"{path}:{exc.lineno}:{exc.colno}"
        repaired = repair_truncated_json(text, exc.pos)
        if repaired is None:
            raise SelftuneError(
                f"{where}: not valid JSON ({exc.msg}); nothing could be read"
            ) from exc
        ctx.skip(where, f"not valid JSON ({exc.msg}); everything before this point was imported")
        return repaired


def repair_truncated_json(text: str, error_pos: int) -> Any | None:
    """The longest prefix of a damaged JSON document that ends after a complete array element,
    closed with the brackets still open there; None when there is no such prefix."""
    stack: list[str] = []
    in_string = escaped = False
    cuts: list[tuple[int, str]] = []  # (position after a complete element, open brackets there)
    for i, ch in enumerate(text[:error_pos]):
        if in_string:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == '"':
                in_string = False
            continue
        if ch == '"':
            in_string = True
        elif ch in "[{":
            stack.append(ch)
        elif ch in "]}":
            if not stack:
                break
            stack.pop()
            if stack and stack[-1] == "[":
                cuts.append((i + 1, "".join(stack)))
    closers = {"[": "]", "{": "}"}
    for end, open_brackets in reversed(cuts[-200:]):
        candidate = text[:end] + "".join(closers[b] for b in reversed(open_brackets))
        try:
            return json.loads(candidate)
        except json.JSONDecodeError:
            continue
    return None


def from_epoch(seconds: float) -> datetime:
    """A UTC datetime from seconds since 1970 (export epochs are UTC)."""
    return datetime.fromtimestamp(seconds, UTC)


def from_iso(value: str) -> datetime:
    """A timezone-aware datetime from ISO 8601 text ('Z' allowed; naive means local time)."""
    when = datetime.fromisoformat(value.replace("Z", "+00:00"))
    return when if when.tzinfo else when.astimezone()


def next_seq(seen: Counter, *key: object) -> int:
    """0 for the first message with this key, 1 for an identical second one, and so on."""
    seen[key] += 1
    return seen[key] - 1


MOJIBAKE_HINT = re.compile("[\u00c2-\u00f4][\u0080-\u00bf]")


def fix_mojibake(text: str) -> str:
    """Undo UTF-8 read as Latin-1 (Facebook/Instagram JSON); leaves other text as it is."""
    if not text or not MOJIBAKE_HINT.search(text):
        return text
    try:
        return text.encode("latin-1").decode("utf-8")
    except (UnicodeEncodeError, UnicodeDecodeError):
        import ftfy

        return ftfy.fix_text(text, normalization="NFC")
