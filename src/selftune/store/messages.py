"""The store's messages, notes and import history: idempotent inserts (ids are content-derived,
so importing the same export twice adds nothing), the replacement of edited or re-read messages,
and the reads the build, the CLI and the memory make of them.

The store always keeps the original text; scrubbing happens later, in the dataset only.
`Store` (connection.py) has these methods; they use its connection, `self.db`.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from selftune.records import Block, Message, Note


def _dt(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value else None


@dataclass
class UnindexedLoad:
    """A first import's own record while `messages_by_id` is dropped: the ids it stored, and
    the owner flags of messages it met again, applied once the index is back."""

    ids: set[str] = field(default_factory=set)
    flags: list[tuple[int, str]] = field(default_factory=list)


class MessageTables:
    """The queries on `messages`, `notes` and `imports`."""

    db: sqlite3.Connection
    unindexed_load: UnindexedLoad | None
    writing: threading.RLock  # see Store: held around write transactions

    def start_import(self, path: str, fmt: str) -> int:
        """A new `imports` row for one file or folder, marked 'running'. Rows another ingest left
        'running' belong to a process that was killed: they are marked 'interrupted' (their counts
        say what had been committed)."""
        with self.db:
            self.db.execute("UPDATE imports SET status = 'interrupted' WHERE status = 'running'")
            cur = self.db.execute(
                "INSERT INTO imports (path, format, started, added, existing, skipped,"
                " skipped_detail, status) VALUES (?, ?, ?, 0, 0, 0, '[]', 'running')",
                (path, fmt, datetime.now().astimezone().isoformat(timespec="seconds")),
            )
        return int(cur.lastrowid or 0)

    def finish_import(
        self, import_id: int, added: int, existing: int, skipped: list[dict[str, str]]
    ) -> None:
        with self.db:
            self.db.execute(
                "UPDATE imports SET added=?, existing=?, skipped=?, skipped_detail=?,"
                " status='done' WHERE id=?",
                (added, existing, len(skipped), json.dumps(skipped), import_id),
            )

    def add_messages(self, messages: Iterable[Message], import_id: int | None = None) -> int:
        """Insert messages that are not stored yet, in one transaction; returns how many were new.

        A message stored before whose owner flag was wrong or unknown (read from a truncated
        export, say) takes the flag this import found: the newer reading corrects it. The import's
        row counts what each committed batch added, so a killed ingest leaves a true count."""
        dumps = json.dumps
        rows = [
            (
                m.id,
                m.source,
                m.conversation_id,
                m.conversation_title,
                m.conversation_kind,
                m.iso_timestamp(),
                m.author,
                m.author_id,
                None if m.is_me is None else int(m.is_me),
                m.kind,
                m.text,
                m.reply_to,
                m.origin,
                dumps(m.extra, ensure_ascii=False, default=str) if m.extra else "{}",
                import_id,
            )
            for m in messages
        ]
        load = self.unindexed_load
        fresh, flags, new_ids = rows, [], set()
        if load is not None:  # no id index to find a doubled id: this load keeps them apart
            fresh = []
            for row in rows:
                if row[0] in load.ids or row[0] in new_ids:
                    if row[8] is not None:  # as the upsert would: the later flag corrects it
                        flags.append((row[8], row[0]))
                else:
                    new_ids.add(row[0])
                    fresh.append(row)
        with self.writing, self.db:
            before = self.db.execute("SELECT coalesce(max(rowid), 0) FROM messages").fetchone()[0]
            self.db.executemany(
                "INSERT INTO messages VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)"
                + (
                    ""
                    if load is not None
                    else " ON CONFLICT (id) DO UPDATE SET is_me = excluded.is_me"
                    " WHERE excluded.is_me IS NOT NULL AND messages.is_me IS NOT excluded.is_me"
                ),
                fresh,
            )
            after = self.db.execute("SELECT coalesce(max(rowid), 0) FROM messages").fetchone()[0]
            added = after - before
            if import_id is not None:
                self.db.execute(
                    "UPDATE imports SET added = added + ?, existing = existing + ? WHERE id = ?",
                    (added, len(rows) - added, import_id),
                )
        if load is not None:  # committed: only now are these ids stored
            load.ids |= new_ids
            load.flags += flags
        return added

    def correct_owner_flags(self, flags: list[tuple[int, str]]) -> None:
        """(is_me, id) in order: what an upsert would have done for messages met twice."""
        with self.writing, self.db:
            self.db.executemany(
                "UPDATE messages SET is_me = ? WHERE id = ? AND is_me IS NOT ?",
                [(flag, message_id, flag) for flag, message_id in flags],
            )

    def doubled_id_rows(self) -> list[tuple[int, str]]:
        """(rowid, text) of every row whose id an earlier row already has."""
        return [
            (r[0], r[1])
            for r in self.db.execute(
                "SELECT rowid, text FROM messages WHERE rowid NOT IN"
                " (SELECT min(rowid) FROM messages GROUP BY id)"
            )
        ]

    def replace_edited(self, edited: Iterable[tuple[str, str, str]], seen: set[str]) -> list[str]:
        """Delete the earlier versions of messages edited since: for each (conversation id,
        timestamp, author) of an edited message, the stored messages with that key that the new
        export no longer holds (`seen`: the ids it does hold). Returns their origins."""
        replaced = []
        with self.db:
            for conversation_id, timestamp, author in set(edited):
                rows = self.db.execute(
                    "SELECT rowid, id, text, origin FROM messages WHERE conversation_id = ?"
                    " AND timestamp = ? AND author = ?",
                    (conversation_id, timestamp, author),
                ).fetchall()
                stale = [r for r in rows if r[1] not in seen]
                self._delete_rows([(r[0], r[2]) for r in stale])
                replaced.extend(r[3] for r in stale)
        return replaced

    def _delete_rows(self, rows: Iterable[tuple[int, str]]) -> None:
        """Delete messages by (rowid, text), and their place in the memory's search index (the
        index follows an import while it loads, so a message replaced at its end may be in it).
        Inside the caller's transaction."""
        for rowid, text in rows:
            indexed = self.db.execute(
                "SELECT 1 FROM memory_meta WHERE rowid = ?", (rowid,)
            ).fetchone()
            if indexed:  # external-content FTS: a delete must repeat the indexed text
                self.db.execute(
                    "INSERT INTO memory_fts (memory_fts, rowid, text) VALUES ('delete', ?, ?)",
                    (rowid, text),
                )
                self.db.execute("DELETE FROM memory_meta WHERE rowid = ?", (rowid,))
            self.db.execute("DELETE FROM messages WHERE rowid = ?", (rowid,))

    def replace_reread(self, origin_prefix: str, import_id: int, seen: set[str]) -> list[str]:
        """Delete what an earlier import of the same file stored and this import read otherwise:
        rows from `origin_prefix` (the file or folder) with the conversation, time and author of a
        message this import stored under another id (a newer version of the parser reads the
        message differently, or it was edited). Messages that are simply absent are kept (an
        export can be shorter than the last). Returns the origins deleted."""
        like = origin_prefix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        earlier = self.db.execute(  # only a path imported before can hold an older reading
            "SELECT 1 FROM imports WHERE path = ? AND id != ? LIMIT 1", (origin_prefix, import_id)
        ).fetchone()
        if earlier is None:
            return []
        with self.db:
            self.db.execute("CREATE TEMP TABLE IF NOT EXISTS reread (id TEXT PRIMARY KEY)")
            self.db.execute("DELETE FROM reread")
            self.db.executemany("INSERT OR IGNORE INTO reread VALUES (?)", ((i,) for i in seen))
            stale = self.db.execute(
                "SELECT DISTINCT old.rowid, old.text, old.origin FROM messages AS old"
                " JOIN messages AS new"
                " ON new.conversation_id = old.conversation_id AND new.timestamp = old.timestamp"
                " AND new.author = old.author"
                " WHERE new.id IN (SELECT id FROM reread) AND old.id NOT IN (SELECT id FROM reread)"
                " AND old.origin LIKE ? ESCAPE '\\'",
                (like,),
            ).fetchall()
            self._delete_rows((r[0], r[1]) for r in stale)
            self.db.execute("DELETE FROM reread")
        return [r[2] for r in stale]

    def delete_messages_from(self, origins: Iterable[str]) -> list[str]:
        """Delete the messages that came from these origins (a message redacted at its source,
        e.g. a Matrix redaction) and their place in the memory's search index; returns the ids
        deleted."""
        wanted = list(dict.fromkeys(origins))
        deleted: list[str] = []
        with self.db:
            for start in range(0, len(wanted), 500):
                part = wanted[start : start + 500]
                marks = ",".join("?" * len(part))
                rows = self.db.execute(
                    f"SELECT rowid, id, text FROM messages WHERE origin IN ({marks})", part
                ).fetchall()
                self._delete_rows((r[0], r[2]) for r in rows)
                deleted.extend(r[1] for r in rows)
        return deleted

    def add_notes(self, notes: Iterable[Note], import_id: int | None = None) -> int:
        """Insert new notes and update changed ones; returns how many were new or changed."""
        changed = 0
        with self.db:
            for n in notes:
                blocks = json.dumps([b.to_dict() for b in n.blocks], ensure_ascii=False)
                row = self.db.execute(
                    "SELECT text, blocks FROM notes WHERE id=?", (n.id,)
                ).fetchone()
                if row is not None and row["text"] == n.text and row["blocks"] == blocks:
                    continue
                changed += 1
                self.db.execute(
                    "INSERT OR REPLACE INTO notes VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)",
                    (
                        n.id,
                        n.source,
                        n.title,
                        n.path,
                        n.text,
                        blocks,
                        n.created.isoformat() if n.created else None,
                        n.modified.isoformat() if n.modified else None,
                        json.dumps(n.tags, ensure_ascii=False),
                        json.dumps(n.links, ensure_ascii=False),
                        json.dumps(n.metadata, ensure_ascii=False, default=str),
                        n.origin,
                        import_id,
                    ),
                )
            if import_id is not None and changed:
                self.db.execute(
                    "UPDATE imports SET added = added + ? WHERE id = ?", (changed, import_id)
                )
        return changed

    def messages(self, conversation_id: str | None = None) -> Iterator[Message]:
        """Messages in conversation and time order."""
        query = "SELECT * FROM messages"
        args: tuple[Any, ...] = ()
        if conversation_id:
            query += " WHERE conversation_id = ?"
            args = (conversation_id,)
        query += " ORDER BY conversation_id, timestamp, rowid"
        for r in self.db.execute(query, args):
            yield Message(
                id=r["id"],
                source=r["source"],
                conversation_id=r["conversation_id"],
                conversation_title=r["conversation_title"],
                conversation_kind=r["conversation_kind"],
                timestamp=datetime.fromisoformat(r["timestamp"]),
                author=r["author"],
                author_id=r["author_id"],
                is_me=None if r["is_me"] is None else bool(r["is_me"]),
                kind=r["kind"],
                text=r["text"],
                reply_to=r["reply_to"],
                origin=r["origin"],
                extra=json.loads(r["extra"]) if r["extra"] != "{}" else {},
            )

    def notes(self) -> Iterator[Note]:
        for r in self.db.execute("SELECT * FROM notes ORDER BY source, path"):
            yield Note(
                id=r["id"],
                source=r["source"],
                title=r["title"],
                path=r["path"],
                text=r["text"],
                blocks=[Block.from_dict(b) for b in json.loads(r["blocks"])],
                created=_dt(r["created"]),
                modified=_dt(r["modified"]),
                tags=json.loads(r["tags"]),
                links=json.loads(r["links"]),
                metadata=json.loads(r["metadata"]),
                origin=r["origin"],
            )

    def counts(self) -> dict[str, int]:
        one = self.db.execute
        return {
            "messages": one("SELECT count(*) FROM messages").fetchone()[0],
            "my_messages": one("SELECT count(*) FROM messages WHERE is_me=1").fetchone()[0],
            "conversations": one("SELECT count(DISTINCT conversation_id) FROM messages").fetchone()[
                0
            ],
            "notes": one("SELECT count(*) FROM notes").fetchone()[0],
        }

    def owners_by_conversation(self) -> list[tuple[str, str | None, int]]:
        """Each conversation's title, the authors marked as the owner in it (comma-separated, or
        None), and its message count, by title."""
        rows = self.db.execute(
            "SELECT conversation_title, group_concat(DISTINCT CASE WHEN is_me=1 THEN author END),"
            " count(*) FROM messages GROUP BY conversation_id ORDER BY conversation_title"
        ).fetchall()
        return [(r[0], r[1], r[2]) for r in rows]
