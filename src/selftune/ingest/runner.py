"""Walk the paths given to `selftune ingest`, pick a parser for each, and load records into the store.

A file no parser recognises, a record that breaks a rule, or a parser that fails on one file is
reported with where and why; everything else still imports.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from selftune.errors import SelftuneError
from selftune.ingest.registry import (
    ParseContext,
    Parser,
    Skipped,
    detect_parser,
    get_parser,
    parsers,
)
from selftune.records import Message, Note, validate_message, validate_note
from selftune.store import Store

BATCH = 5000


@dataclass
class ImportSummary:
    path: str
    format: str
    messages_added: int = 0
    messages_seen: int = 0
    notes_changed: int = 0
    notes_seen: int = 0
    skipped: list[Skipped] = field(default_factory=list)

    def line(self) -> str:
        parts = [f"{self.path} [{self.format}]"]
        if self.messages_seen:
            parts.append(f"{self.messages_added} new of {self.messages_seen} messages")
        if self.notes_seen:
            parts.append(f"{self.notes_changed} new or changed of {self.notes_seen} notes")
        if self.skipped:
            parts.append(f"{len(self.skipped)} skipped")
        return ": ".join(parts[:1]) + ": " + ", ".join(parts[1:] or ["nothing found"])


SURROGATE = re.compile("[\ud800-\udfff]")


def _fix(text: str) -> str:
    return SURROGATE.sub("\ufffd", text)


def _valid_unicode(message: Message) -> Message:
    """The message with text SQLite can store (broken surrogates become U+FFFD); id unchanged."""
    for name in ("text", "author", "conversation_title", "origin"):
        setattr(message, name, _fix(getattr(message, name)))
    if message.author_id is not None:
        message.author_id = _fix(message.author_id)
    message.extra = json.loads(_fix(json.dumps(message.extra, ensure_ascii=False, default=str)))
    return message


def plan(path: Path, fmt: str | None) -> Iterator[tuple[Path, Parser | None]]:
    """(path, parser) pairs for everything under `path`; parser None means nobody recognised it."""
    if fmt:
        yield path, get_parser(fmt)
        return
    parser = detect_parser(path)
    if parser is not None:
        yield path, parser
    elif path.is_dir():
        for child in sorted(path.iterdir()):
            if not child.name.startswith("."):
                yield from plan(child, None)
    else:
        yield path, None


def ingest_paths(
    store: Store,
    paths: list[Path],
    me: tuple[str, ...],
    fmt: str | None = None,
    progress: Callable[[int], None] | None = None,
) -> list[ImportSummary]:
    """Import every path; returns one summary per file or folder a parser handled.
    `progress`, when given, is called with the number of records read since its last call."""
    summaries = []
    for root in paths:
        if not root.exists():
            summary = ImportSummary(str(root), "-")
            summary.skipped.append(Skipped(str(root), "no such file or directory"))
            summaries.append(summary)
            continue
        for path, parser in plan(root, fmt):
            if parser is None:
                summary = ImportSummary(str(path), "-")
                summary.skipped.append(
                    Skipped(
                        str(path),
                        "unrecognised format; known formats: "
                        + ", ".join(sorted(parsers()))
                        + " (use --format NAME to force one)",
                    )
                )
                summaries.append(summary)
                continue
            summaries.append(_ingest_one(store, path, parser, me, progress))
    store.apply_identity(me)
    from selftune.memory import on_ingest

    on_ingest(store)  # the memory's search index follows the store, incrementally
    return summaries


def _ingest_one(
    store: Store,
    path: Path,
    parser: Parser,
    me: tuple[str, ...],
    progress: Callable[[int], None] | None = None,
) -> ImportSummary:
    summary = ImportSummary(str(path), parser.name)
    ctx = ParseContext(me=me)
    import_id = store.start_import(str(path), parser.name)
    messages: list[Message] = []
    notes: list[Note] = []

    def flush() -> None:
        if progress is not None:
            progress(len(messages) + len(notes))
        try:
            summary.messages_added += store.add_messages(messages, import_id)
        except UnicodeEncodeError:  # lone surrogates ("\ud83d" cut from its pair) in JSON text
            summary.messages_added += store.add_messages(map(_valid_unicode, messages), import_id)
        summary.notes_changed += store.add_notes(notes, import_id)
        messages.clear()
        notes.clear()

    try:
        for record in parser.parse(path, ctx):
            if isinstance(record, Message):
                problems = validate_message(record)
                if problems:
                    ctx.skip(record.origin or str(path), "; ".join(problems))
                    continue
                summary.messages_seen += 1
                messages.append(record)
            else:
                problems = validate_note(record)
                if problems:
                    ctx.skip(record.origin or str(path), "; ".join(problems))
                    continue
                summary.notes_seen += 1
                notes.append(record)
            if len(messages) + len(notes) >= BATCH:
                flush()
    except SelftuneError as exc:
        ctx.skip(str(path), str(exc))
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        ctx.skip(str(path), f"could not read ({type(exc).__name__}: {exc}); the rest was kept")
    except Exception as exc:  # a parser bug must not lose the other files of this import
        ctx.skip(
            str(path),
            f"the {parser.name} parser failed ({type(exc).__name__}: {exc}); what it read before "
            "was kept. Please report this with the file's layout (not its content).",
        )
    flush()
    summary.skipped = ctx.skipped
    store.finish_import(
        import_id,
        summary.messages_added + summary.notes_changed,
        summary.messages_seen + summary.notes_seen - summary.messages_added - summary.notes_changed,
        [{"origin": s.origin, "reason": s.reason} for s in ctx.skipped],
    )
    return summary
