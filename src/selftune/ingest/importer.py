"""Walk the paths given to `selftune ingest`, pick a parser for each, and load records into the store.

A file no parser recognises, a record that breaks a rule, or a parser that fails on one file is
reported with where and why; everything else still imports.
"""

from __future__ import annotations

import gc
import json
import re
import sqlite3
from collections.abc import Callable, Iterable, Iterator
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

BATCH = 20000


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


def plan(
    path: Path, fmt: str | None, root: Path | None = None, visited: set[Path] | None = None
) -> Iterator[tuple[Path, Parser | None] | Skipped]:
    """(path, parser) pairs for everything under `path`; parser None means nobody recognised it.
    Symbolic links that lead outside the folder given, broken links, loops and empty files are
    yielded as `Skipped` (with the reason), and the walk goes on with the rest."""
    if fmt:
        yield path, get_parser(fmt)
        return
    root = root or (path.resolve() if path.is_dir() else path.resolve().parent)
    visited = visited if visited is not None else set()
    if path.is_file() and path.stat().st_size == 0:
        yield Skipped(str(path), "an empty file; nothing to import")
        return
    parser = detect_parser(path)
    if parser is not None:
        yield path, parser
        return
    if not path.is_dir():
        yield path, None
        return
    visited.add(path.resolve())
    try:
        children = sorted(path.iterdir())
    except OSError as exc:
        yield Skipped(str(path), f"could not list the folder ({exc.strerror or exc})")
        return
    for child in children:
        if child.name.startswith("."):
            continue
        problem = link_problem(child, root, visited)
        if problem:
            yield Skipped(str(child), problem)
            continue
        yield from plan(child, None, root, visited)


def link_problem(path: Path, root: Path, visited: set[Path]) -> str | None:
    """Why a symbolic link is not followed (None for a plain path or a link that stays inside)."""
    if not path.is_symlink():
        return None
    try:
        target = path.resolve(strict=True)
    except (OSError, RuntimeError):  # RuntimeError: a loop on Python < 3.13
        return "a broken or looping symbolic link; skipped"
    if not target.is_relative_to(root):
        return (
            f"a symbolic link to {target}, outside the folder being imported; skipped "
            "(give that path itself to `selftune ingest` to import it)"
        )
    if target.is_dir() and target in visited:
        return "a symbolic link back into a folder already being imported (a loop); skipped"
    return None


def ingest_paths(
    store: Store,
    paths: list[Path],
    me: tuple[str, ...],
    fmt: str | None = None,
    progress: Callable[[int], None] | None = None,
) -> list[ImportSummary]:
    """Import every path; returns one summary per file or folder a parser handled.
    `progress`, when given, is called with the number of records read since its last call."""
    from selftune.memory import following_ingest

    with following_ingest(store) as committed:
        summaries = _ingest_all(store, paths, me, fmt, progress, committed)
    store.apply_identity(me)
    from selftune.memory import on_ingest

    on_ingest(store)  # the memory's search index follows the store, incrementally
    return summaries


def _ingest_all(
    store: Store,
    paths: list[Path],
    me: tuple[str, ...],
    fmt: str | None,
    progress: Callable[[int], None] | None,
    committed: Callable[[], None],
) -> list[ImportSummary]:
    summaries = []
    for root in paths:
        if not root.exists():
            summary = ImportSummary(str(root), "-")
            summary.skipped.append(Skipped(str(root), "no such file or directory"))
            summaries.append(summary)
            continue
        for item in plan(root, fmt):
            if isinstance(item, Skipped):
                summary = ImportSummary(item.origin, "-")
                summary.skipped.append(item)
                summaries.append(summary)
                continue
            path, parser = item
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
            # records hold no reference cycles: the cyclic collector, which would walk every live
            # record again and again while a big chat loads (15% of the time), waits until after
            gc_was_on = gc.isenabled()
            gc.disable()
            try:
                summaries.append(_ingest_one(store, path, parser, me, progress, committed))
            finally:
                if gc_was_on:
                    gc.enable()
    return summaries


def _store_batch(store: Store, messages: list[Message], import_id: int, ctx: ParseContext) -> int:
    """Insert a batch; a message SQLite refuses (too big, broken text) is skipped by itself."""
    try:
        return store.add_messages(messages, import_id)
    except (UnicodeEncodeError, sqlite3.DataError, sqlite3.InterfaceError, OverflowError):
        added = 0
        for message in messages:
            try:
                added += store.add_messages([_valid_unicode(message)], import_id)
            except (sqlite3.DataError, sqlite3.InterfaceError, OverflowError) as exc:
                ctx.skip(message.origin, f"the store refused this message ({exc})")
        return added


def ingest_records(
    store: Store,
    label: str,
    fmt: str,
    read: Callable[[ParseContext], Iterable[Message | Note]],
    me: tuple[str, ...],
) -> ImportSummary:
    """Load records that come from elsewhere than a file (a homeserver's history: `label` is
    where, e.g. "matrix:@me:server", a prefix of every record's origin) the way a file's are:
    validated, in batches, edits replacing earlier versions, one `imports` row; then identity
    and the memory index, as after `ingest_paths`."""
    from selftune.memory import following_ingest, on_ingest

    with following_ingest(store) as committed:
        summary = _load(store, label, fmt, read, me, committed=committed)
    store.apply_identity(me)

    on_ingest(store)
    return summary


def _ingest_one(
    store: Store,
    path: Path,
    parser: Parser,
    me: tuple[str, ...],
    progress: Callable[[int], None] | None = None,
    committed: Callable[[], None] | None = None,
) -> ImportSummary:
    return _load(
        store, str(path), parser.name, lambda ctx: parser.parse(path, ctx), me, progress, committed
    )


def _load(
    store: Store,
    label: str,
    fmt: str,
    read: Callable[[ParseContext], Iterable[Message | Note]],
    me: tuple[str, ...],
    progress: Callable[[int], None] | None = None,
    committed: Callable[[], None] | None = None,
) -> ImportSummary:
    """Read, validate and store one source's records in batches; `committed` is called after
    each batch is committed (the memory index follows the load on another thread)."""
    summary = ImportSummary(label, fmt)
    ctx = ParseContext(me=me)
    import_id = store.start_import(label, fmt)
    messages: list[Message] = []
    notes: list[Note] = []
    seen: set[str] = set()
    edited: list[tuple[str, str, str]] = []

    counts = [0, 0]  # messages, notes read and valid

    def flush() -> None:
        if progress is not None:
            progress(len(messages) + len(notes))
        counts[0] += len(messages)
        counts[1] += len(notes)
        summary.messages_added += _store_batch(store, messages, import_id, ctx)
        try:
            summary.notes_changed += store.add_notes(notes, import_id)
        except (sqlite3.DataError, sqlite3.InterfaceError, UnicodeEncodeError) as exc:
            ctx.skip(label, f"the store refused a batch of notes ({exc})")
        messages.clear()
        notes.clear()
        if committed is not None:
            committed()

    # a first import into an empty store builds the conversation index once, at the end
    with store.indexes_deferred("messages"):
        try:
            for record in read(ctx):
                if isinstance(record, Message):
                    problems = validate_message(record)
                    if problems:
                        ctx.skip(record.origin or label, "; ".join(problems))
                        continue
                    messages.append(record)
                    seen.add(record.id)
                    # an edit (or a link whose URL older versions put in the text) changes the text,
                    # so the id: the earlier version of this message must go
                    if record.extra and (record.extra.get("edited") or record.extra.get("links")):
                        edited.append(
                            (record.conversation_id, record.timestamp.isoformat(), record.author)
                        )
                    if len(messages) >= BATCH:
                        flush()
                else:
                    problems = validate_note(record)
                    if problems:
                        ctx.skip(record.origin or label, "; ".join(problems))
                        continue
                    notes.append(record)
                    if len(notes) >= BATCH:
                        flush()
        except SelftuneError as exc:
            reason = str(exc)  # the error names the file (or zip member) itself; say it once
            where, _, rest = reason.partition(": ")
            if rest and where.startswith(label):
                ctx.skip(where, rest)
            else:
                ctx.skip(label, reason)
        except (OSError, UnicodeDecodeError, ValueError) as exc:
            ctx.skip(label, f"could not read ({type(exc).__name__}: {exc}); the rest was kept")
        except Exception as exc:  # a parser bug must not lose the other files of this import
            ctx.skip(
                label,
                f"the {fmt} parser failed ({type(exc).__name__}: {exc}); what it read before "
                "was kept. Please report this with the file's layout (not its content).",
            )
        flush()
    summary.messages_seen, summary.notes_seen = counts
    if edited:  # an export made after an edit holds the new version: the old one goes
        for origin in store.replace_edited(edited, seen):
            ctx.skip(origin, "replaced by its edited version in this newer export")
    # the same file imported before, read otherwise then (an older selftune, or an edit)
    for origin in store.replace_reread(label, import_id, seen):
        ctx.skip(origin, "replaced: this import reads the message differently from the last one")
    summary.skipped = ctx.skipped
    store.finish_import(
        import_id,
        summary.messages_added + summary.notes_changed,
        summary.messages_seen + summary.notes_seen - summary.messages_added - summary.notes_changed,
        [{"origin": s.origin, "reason": s.reason} for s in ctx.skipped],
    )
    return summary
