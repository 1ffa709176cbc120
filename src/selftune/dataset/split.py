"""The train/validation split: the most recent material of each source, sized in tokens.

Each source holds out its most recent sessions and notes (or, with `split: conversation`, whole
conversations) until the held-out tokens reach max(`valid_fraction` of the source,
`min_valid_tokens`), never more than `max_valid_share` of it and never everything; a session or a
note stays on one side. Notes are dated by what the export says (`note_date`): the note's own
creation time or front-matter date, other front-matter dates, a date in the title (daily notes),
then their order in the store; a Markdown file's modification time is never used (a checkout or a
copy sets it). Held-out notes are then cut on block boundaries into pieces of at most
`valid_note_chunk_tokens`, so that a small vault still gives several held-out examples.
`split_report` is what the card says about it, with a warning when a held-out set is too small.
"""

from __future__ import annotations

import hashlib
import re
from collections import Counter
from collections.abc import Callable, Sequence
from datetime import UTC, date, datetime
from typing import TYPE_CHECKING, Any

from selftune.config import BuildConfig
from selftune.dataset.notes_chunks import note_chunks

if TYPE_CHECKING:
    from selftune.dataset.examples import Example
    from selftune.records import Note

# sources whose `modified` is the file's mtime (set by a checkout or a copy), not a writing date
MTIME_SOURCES = {"markdown"}
FRONT_MATTER_DATES = ("date", "created", "created_at", "updated", "modified", "published")
MONTHS = "january february march april may june july august september october november december"
ISO_DATE = re.compile(r"\b(\d{4})-(\d{2})-(\d{2})\b")
ROAM_DATE = re.compile(
    r"\b(" + MONTHS.replace(" ", "|") + r") (\d{1,2})(?:st|nd|rd|th)?, (\d{4})\b", re.I
)
TRUST_TOKENS = 256  # below this many held-out tokens a source's numbers are noise
TRUST_EXAMPLES = 4


def _as_datetime(value: Any) -> datetime | None:
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    if isinstance(value, date):
        return datetime(value.year, value.month, value.day, tzinfo=UTC)
    if isinstance(value, str):
        try:
            return _as_datetime(datetime.fromisoformat(value.strip()))
        except ValueError:
            return None
    return None


def title_date(title: str) -> datetime | None:
    """The date a daily note's title names ('2024-03-01', 'March 1st, 2024'), if any."""
    try:
        if m := ISO_DATE.search(title):
            return datetime(int(m[1]), int(m[2]), int(m[3]), tzinfo=UTC)
        if m := ROAM_DATE.search(title):
            month = MONTHS.split().index(m[1].lower()) + 1
            return datetime(int(m[3]), month, int(m[2]), tzinfo=UTC)
    except ValueError:
        return None
    return None


def note_date(note: Note) -> tuple[datetime | None, str]:
    """(when the note was written, how that is known): 'created', 'front matter', 'title',
    'modified' (an export's own edit time), or (None, 'file order')."""
    if note.created:
        return note.created, "created"
    for key in FRONT_MATTER_DATES:
        when = _as_datetime(note.metadata.get(key))
        if when:
            return when, "front matter"
    when = title_date(note.title)
    if when:
        return when, "title"
    if note.modified and note.source not in MTIME_SOURCES:
        return note.modified, "modified"
    return None, "file order"


def order_key(e: Example) -> tuple[float, int, str, str]:
    """Time order (across timezones; undated notes first, in file order), then a stable tie-break."""
    return (e.start.timestamp() if e.start else float("-inf"), e.order, e.source, e.session)


def _stable(key: str) -> str:
    return hashlib.blake2b(key.encode(), digest_size=8).hexdigest()


def _tokens(group: list[Example]) -> int:
    return sum(e.tokens for e in group)


def held_out_target(total: int, config: BuildConfig) -> tuple[float, float]:
    """(tokens to hold out, most tokens that may be held out) for a source of `total` tokens."""
    cap = config.max_valid_share * total
    return min(max(config.valid_fraction * total, config.min_valid_tokens), cap), cap


def split_groups(
    groups: list[list[Example]], config: BuildConfig
) -> tuple[list[list[Example]], list[list[Example]]]:
    """(train, valid) groups of one source: the most recent groups (or whole conversations in a
    stable pseudo-random order) until the held-out target is reached; at least one group is held
    out and at least one is kept for training."""
    ordered = sorted(groups, key=lambda g: order_key(g[0]))
    if len(ordered) < 2 or config.valid_fraction == 0:
        return ordered, []
    target, cap = held_out_target(sum(_tokens(g) for g in ordered), config)
    conversations = sorted({g[0].conversation for g in ordered}, key=_stable)
    if config.split == "conversation" and len(conversations) > 1:
        sizes = Counter[str]()
        for g in ordered:
            sizes[g[0].conversation] += _tokens(g)
        held: set[str] = set()
        size = 0
        for conversation in conversations[:-1]:
            more = sizes[conversation]
            if held and (size + more > cap or size + more - target > target - size):
                continue
            held.add(conversation)
            size += sizes[conversation]
        return (
            [g for g in ordered if g[0].conversation not in held],
            [g for g in ordered if g[0].conversation in held],
        )
    n_valid, size = 0, 0
    for g in reversed(ordered[1:]):
        more = _tokens(g)
        # after the first, a group is added only if it brings the size closer to the target
        if n_valid and (size + more > cap or size + more - target > target - size):
            break
        n_valid += 1
        size += more
    return ordered[:-n_valid], ordered[-n_valid:]


def cut_held_out_notes(
    valid: list[Example],
    config: BuildConfig,
    many: Callable[[Sequence[str]], list[int]],
    filtered: Counter[str],
) -> list[Example]:
    """Held-out note chunks cut on block boundaries into pieces of `valid_note_chunk_tokens`."""
    from dataclasses import replace

    out: list[Example] = []
    for e in valid:
        if e.kind != "notes" or e.tokens <= config.valid_note_chunk_tokens:
            out.append(e)
            continue
        pieces, _ = note_chunks("", e.record["text"], config.valid_note_chunk_tokens, many)
        counts = many(pieces)
        for piece, tokens in zip(pieces, counts, strict=True):
            if tokens < config.min_note_tokens:
                filtered["too short"] += 1
                continue
            out.append(replace(e, record={"text": piece}, tokens=tokens, targets=piece))
    return out


def split_report(train: list[Example], valid: list[Example], config: BuildConfig) -> dict[str, Any]:
    """How the split was made, per source, with warnings when a held-out set is too small."""
    sources = sorted({e.source for e in train} | {e.source for e in valid})
    per_source: dict[str, Any] = {}
    warnings = []
    for source in sources:
        held = [e for e in valid if e.source == source]
        kept = [e for e in train if e.source == source]
        total = sum(e.tokens for e in held) + sum(e.tokens for e in kept)
        held_tokens = sum(e.tokens for e in held)
        dated = Counter(e.dated_by or "timestamp" for e in held)
        per_source[source] = {
            "valid_examples": len(held),
            "valid_tokens": held_tokens,
            "valid_share": round(held_tokens / total, 3) if total else 0.0,
            "target_tokens": round(held_out_target(total, config)[0]),
            "ordered_by": dict(sorted(dated.items())),
        }
        if held_tokens < TRUST_TOKENS or len(held) < TRUST_EXAMPLES:
            warnings.append(
                f"{source}: only {held_tokens} held-out tokens in {len(held)} example(s); "
                "perplexity, early stopping and the best checkpoint on so little are noise "
                "(write more, or raise min_valid_tokens / max_valid_share)"
            )
        if dated.get("file order"):
            warnings.append(
                f"{source}: {dated['file order']} held-out example(s) come from notes without a "
                "date (no creation time, front-matter date or date in the title), ordered by "
                "their path: the held-out set may not be your most recent writing"
            )
    how = (
        "whole conversations (stable pseudo-random order)"
        if config.split == "conversation"
        else "the most recent sessions and notes"
    )
    return {
        "method": (
            f"per source, {how}: at least {config.valid_fraction:.0%} of its tokens and at least "
            f"{config.min_valid_tokens} tokens, at most {config.max_valid_share:.0%}; held-out "
            f"notes cut on block boundaries into pieces of at most "
            f"{config.valid_note_chunk_tokens} tokens"
        ),
        "by_source": per_source,
        "warnings": warnings,
    }
