"""The store's messages, notes and import history: idempotent inserts (ids are content-derived,
so importing the same export twice adds nothing), the replacement of edited or re-read messages,
and the reads the build, the CLI and the memory make of them.

The store always keeps the original text; scrubbing happens later, in the dataset only.
`Store` (connection.py) has these methods; they use its connection, `self.db`.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable, Iterator
from datetime import datetime
from typing import Any

from selftune.records import Block, Message, Note


def _dt(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value else None


class MessageTables:
    """The queries on `messages`, `notes` and `imports`."""

    db: sqlite3.Connection

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
                m.timestamp.isoformat(),
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
        with self.db:
            before = self.db.execute("SELECT coalesce(max(rowid), 0) FROM messages").fetchone()[0]
            self.db.executemany(
                "INSERT INTO messages VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)"
                " ON CONFLICT (id) DO UPDATE SET is_me = excluded.is_me"
                " WHERE excluded.is_me IS NOT NULL AND messages.is_me IS NOT excluded.is_me",
                rows,
            )
            after = self.db.execute("SELECT coalesce(max(rowid), 0) FROM messages").fetchone()[0]
            added = after - before
            if import_id is not None:
                self.db.execute(
                    "UPDATE imports SET added = added + ?, existing = existing + ? WHERE id = ?",
                    (added, len(rows) - added, import_id),
                )
            return added

    def replace_edited(self, edited: Iterable[tuple[str, str, str]], seen: set[str]) -> list[str]:
        """Delete the earlier versions of messages edited since: for each (conversation id,
        timestamp, author) of an edited message, the stored messages with that key that the new
        export no longer holds (`seen`: the ids it does hold). Returns their origins."""
        replaced = []
        with self.db:
            for conversation_id, timestamp, author in set(edited):
                rows = self.db.execute(
                    "SELECT id, origin FROM messages WHERE conversation_id = ? AND timestamp = ?"
                    " AND author = ?",
                    (conversation_id, timestamp, author),
                ).fetchall()
                stale = [(r[0], r[1]) for r in rows if r[0] not in seen]
                for message_id, origin in stale:
                    self.db.execute("DELETE FROM messages WHERE id = ?", (message_id,))
                    replaced.append(origin)
        return replaced

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
                "SELECT DISTINCT old.id, old.origin FROM messages AS old JOIN messages AS new"
                " ON new.conversation_id = old.conversation_id AND new.timestamp = old.timestamp"
                " AND new.author = old.author"
                " WHERE new.id IN (SELECT id FROM reread) AND old.id NOT IN (SELECT id FROM reread)"
                " AND old.origin LIKE ? ESCAPE '\\'",
                (like,),
            ).fetchall()
            self.db.executemany("DELETE FROM messages WHERE id = ?", ((r[0],) for r in stale))
            self.db.execute("DELETE FROM reread")
        return [r[1] for r in stale]

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
                for rowid, message_id, text in rows:
                    indexed = self.db.execute(
                        "SELECT 1 FROM memory_meta WHERE rowid = ?", (rowid,)
                    ).fetchone()
                    if indexed:  # external-content FTS: a delete must repeat the indexed text
                        self.db.execute(
                            "INSERT INTO memory_fts (memory_fts, rowid, text)"
                            " VALUES ('delete', ?, ?)",
                            (rowid, text),
                        )
                        self.db.execute("DELETE FROM memory_meta WHERE rowid = ?", (rowid,))
                    self.db.execute("DELETE FROM messages WHERE rowid = ?", (rowid,))
                    deleted.append(message_id)
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
