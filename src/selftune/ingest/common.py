"""Small helpers the parsers share: reading JSON that may be truncated, times, text repair.

Flat functions, no base class: each parser stays a readable file of its own and calls these.
"""

from __future__ import annotations

import json
import os
import re
import zipfile
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from selftune.errors import SelftuneError
from selftune.ingest.registry import ParseContext

BINARY_SNIFF = 8192
BOMS = (
    (b"\xff\xfe\x00\x00", "utf-32-le"),
    (b"\x00\x00\xfe\xff", "utf-32-be"),
    (b"\xef\xbb\xbf", "utf-8-sig"),
    (b"\xff\xfe", "utf-16-le"),
    (b"\xfe\xff", "utf-16-be"),
)


def sniff_encoding(head: bytes) -> str | None:
    """The codec of text that starts with `head` (a BOM, or UTF-16 without one: some phones
    write WhatsApp exports so), 'utf-8' by default, or None when it is not text at all."""
    for bom, codec in BOMS:
        if head.startswith(bom):
            return codec
    if len(head) >= 4 and b"\x00" in head:
        even, odd = head[0::2], head[1::2]
        # UTF-16 text of mostly Latin/Cyrillic letters: every other byte is NUL
        if odd.count(0) > 0.3 * len(odd) and even.count(0) < 0.05 * len(even):
            return "utf-16-le"
        if even.count(0) > 0.3 * len(even) and odd.count(0) < 0.05 * len(odd):
            return "utf-16-be"
        return None
    return None if looks_binary(head) else "utf-8"


def looks_binary(head: bytes) -> bool:
    """True for data that is not text (NUL bytes, or mostly control bytes)."""
    if b"\x00" in head:
        return True
    if not head:
        return False
    control = sum(1 for b in head if b < 9 or 13 < b < 32)
    return control / len(head) > 0.05


def decode_text(raw: bytes, where: str, ctx: ParseContext | None = None) -> str:
    """Bytes of a text export as str: BOMs and UTF-16 honoured, binary refused with a reason,
    invalid UTF-8 replaced by U+FFFD and reported (how many bytes, first line) instead of hidden."""
    codec = sniff_encoding(raw[:BINARY_SNIFF])
    if codec is None:
        raise SelftuneError(
            f"{where}: a binary file, not text (NUL or control bytes); not imported"
        )
    if codec != "utf-8":
        text = raw.decode(codec, errors="replace")
        if "\x00" in text[:BINARY_SNIFF]:
            raise SelftuneError(f"{where}: a binary file, not text; not imported")
        return text.lstrip("\ufeff")
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        text = raw.decode("utf-8", errors="replace")
        bad = text.count("\ufffd") - raw.count("\ufffd".encode())
        line = raw.count(b"\n", 0, exc.start) + 1
        if ctx is not None:
            ctx.skip(
                f"{where}:{line}",
                f"{bad} character(s) are not valid UTF-8 (first on line {line}); they were "
                "replaced by U+FFFD. Re-export the file, or convert it to UTF-8, to keep them",
            )
        return text


def read_head(path: Path, size: int = 4096) -> str:
    """The first `size` bytes of a file as text ('' for binary files)."""
    with path.open("rb") as fh:
        head = fh.read(size)
    codec = sniff_encoding(head)
    if codec is None:
        return ""
    return head.decode(codec, errors="replace").lstrip("\ufeff")


def max_file_bytes() -> int:
    """The largest export file (or zip member) read into memory: 512 MB, or
    SELFTUNE_MAX_FILE_MB. A ten-year chat is tens of MB; past this, something is wrong."""
    return int(float(os.environ.get("SELFTUNE_MAX_FILE_MB", 512)) * 1e6)


def read_capped(path: Path) -> bytes:
    """A file's bytes, refused with a reason when it is larger than `max_file_bytes()`."""
    cap = max_file_bytes()
    size = path.stat().st_size
    if size > cap:
        raise SelftuneError(
            f"{path}: {size / 1e6:.0f} MB is larger than the {cap / 1e6:.0f} MB an export file may "
            "be; not imported (set SELFTUNE_MAX_FILE_MB to raise the limit)"
        )
    return path.read_bytes()


def read_zip_member(zf: zipfile.ZipFile, name: str, where: str, limit: int | None = None) -> bytes:
    """One zip member, decompressed as a stream and stopped at the size cap (a zip bomb's
    declared size can lie, so the cap is enforced on what comes out, not on the header).
    `limit` reads only that many bytes (detection needs the first few KB, not the whole chat)."""
    info = zf.getinfo(name)
    cap = max_file_bytes()
    if limit is None and info.file_size > cap:
        raise SelftuneError(
            f"{where}: {info.file_size / 1e6:.0f} MB uncompressed is larger than the "
            f"{cap / 1e6:.0f} MB an export file may be; not imported "
            "(set SELFTUNE_MAX_FILE_MB to raise the limit)"
        )
    if limit is None and info.compress_size and info.file_size / info.compress_size > 1000:
        raise SelftuneError(
            f"{where}: compressed {info.file_size // max(info.compress_size, 1)}:1, which only a zip "
            "bomb does; not imported"
        )
    wanted = cap + 1 if limit is None else limit
    chunks, total = [], 0
    with zf.open(info) as fh:
        while total < wanted:
            chunk = fh.read(min(1 << 20, wanted - total))
            if not chunk:
                break
            chunks.append(chunk)
            total += len(chunk)
    if limit is None and total > cap:
        raise SelftuneError(
            f"{where}: decompresses to more than {cap / 1e6:.0f} MB (more than the zip says); "
            "not imported"
        )
    return b"".join(chunks)


def load_json(path: Path, ctx: ParseContext, text: str | None = None) -> Any:
    """Parse a JSON file. A truncated or damaged file is reported (with line and column) and
    everything before the damage is still returned, so the well-formed part still imports."""
    if text is None:
        text = decode_text(read_capped(path), str(path), ctx)
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
    n = seen.get(key, 0)  # not seen[key] += 1: Counter's __missing__ is Python code
    seen[key] = n + 1
    return n


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
