"""The twin's SQLite store: messages, notes, people and import history, with numbered migrations.

Inserts are idempotent (ids are content-derived), so importing the same export twice adds nothing.
The store always keeps the original text; scrubbing happens later, in the dataset only.
"""

from __future__ import annotations

import contextlib
import json
import os
import sqlite3
from collections.abc import Callable, Iterable, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

from selftune import __version__
from selftune.errors import SelftuneError
from selftune.records import Block, Message, Note

MIGRATIONS: list[Callable[[sqlite3.Connection], None]] = []


def migration(fn: Callable[[sqlite3.Connection], None]) -> Callable[[sqlite3.Connection], None]:
    """Register a schema migration; they run in definition order, each exactly once, each in one
    transaction with the schema version (`PRAGMA user_version`) it brings the store to."""
    MIGRATIONS.append(fn)
    return fn


class _InTransaction:
    """The connection a migration is given: `executescript` runs the script statement by
    statement, so it stays inside the migration's transaction (sqlite3's own commits first)."""

    def __init__(self, db: sqlite3.Connection):
        self._db = db

    def executescript(self, script: str) -> None:
        statement = ""
        for piece in script.split(";"):
            statement += piece + ";"
            if sqlite3.complete_statement(statement):  # a ';' inside a string or trigger is not
                if statement.strip(" \t\n;"):
                    self._db.execute(statement)
                statement = ""
        if statement.strip(" \t\n;"):
            self._db.execute(statement)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._db, name)


@migration
def m001_initial(db: sqlite3.Connection) -> None:
    db.executescript(
        """
        CREATE TABLE messages (
            id TEXT PRIMARY KEY,
            source TEXT NOT NULL,
            conversation_id TEXT NOT NULL,
            conversation_title TEXT NOT NULL,
            conversation_kind TEXT NOT NULL,
            timestamp TEXT NOT NULL,
            author TEXT NOT NULL,
            author_id TEXT,
            is_me INTEGER,
            kind TEXT NOT NULL,
            text TEXT NOT NULL,
            reply_to TEXT,
            origin TEXT NOT NULL,
            extra TEXT NOT NULL,
            import_id INTEGER
        );
        CREATE INDEX messages_by_conversation ON messages (conversation_id, timestamp);
        CREATE TABLE notes (
            id TEXT PRIMARY KEY,
            source TEXT NOT NULL,
            title TEXT NOT NULL,
            path TEXT NOT NULL,
            text TEXT NOT NULL,
            blocks TEXT NOT NULL,
            created TEXT,
            modified TEXT,
            tags TEXT NOT NULL,
            links TEXT NOT NULL,
            metadata TEXT NOT NULL,
            origin TEXT NOT NULL,
            import_id INTEGER
        );
        CREATE TABLE imports (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            path TEXT NOT NULL,
            format TEXT NOT NULL,
            started TEXT NOT NULL,
            added INTEGER NOT NULL,
            existing INTEGER NOT NULL,
            skipped INTEGER NOT NULL,
            skipped_detail TEXT NOT NULL
        );
        CREATE TABLE people (
            name TEXT PRIMARY KEY,
            alias_of TEXT,
            is_me INTEGER NOT NULL DEFAULT 0,
            excluded INTEGER NOT NULL DEFAULT 0
        );
        """
    )


@migration
def m002_samples_and_ratings(db: sqlite3.Connection) -> None:
    """What the twin generated when used (server, web page, CLI), what was picked and rated."""
    db.executescript(
        """
        CREATE TABLE samples (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            created TEXT NOT NULL,
            endpoint TEXT NOT NULL,
            model TEXT NOT NULL,
            prompt TEXT NOT NULL,
            params TEXT NOT NULL,
            candidates TEXT NOT NULL,
            picked INTEGER,
            edited TEXT,
            flags TEXT NOT NULL DEFAULT '[]'
        );
        CREATE TABLE ratings (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            sample_id INTEGER NOT NULL REFERENCES samples (id),
            candidate INTEGER NOT NULL,
            rating INTEGER NOT NULL,
            created TEXT NOT NULL
        );
        CREATE INDEX ratings_by_sample ON ratings (sample_id);
        CREATE TABLE blind_answers (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            report TEXT NOT NULL,
            pair INTEGER NOT NULL,
            correct INTEGER NOT NULL,
            created TEXT NOT NULL
        );
        """
    )


@migration
def m003_import_status(db: sqlite3.Connection) -> None:
    """An import's state: 'running' while it loads (its counts grow with every committed batch),
    'done' when it finished, 'interrupted' when the process died before it did."""
    db.execute("ALTER TABLE imports ADD COLUMN status TEXT NOT NULL DEFAULT 'done'")


@migration
def m004_memory_index(db: sqlite3.Connection) -> None:
    """The memory's search index over messages (selftune.memory.index fills and queries it):
    full-text (FTS5 with English stemming, external content: the text stays in `messages`), each
    indexed message's UTC time and conversation, who wrote in which conversation, and each
    conversation's title."""
    db.executescript(
        """
        CREATE VIRTUAL TABLE memory_fts USING fts5(
            text, content='messages', content_rowid='rowid',
            tokenize='porter unicode61 remove_diacritics 2'
        );
        CREATE TABLE memory_meta (
            rowid INTEGER PRIMARY KEY,
            ts REAL NOT NULL,
            conversation_id TEXT NOT NULL
        );
        CREATE INDEX memory_meta_by_conversation ON memory_meta (conversation_id, ts);
        CREATE TABLE memory_contacts (
            author TEXT NOT NULL COLLATE NOCASE,
            conversation_id TEXT NOT NULL,
            PRIMARY KEY (author, conversation_id)
        ) WITHOUT ROWID;
        CREATE TABLE memory_conversations (
            conversation_id TEXT PRIMARY KEY,
            title TEXT NOT NULL COLLATE NOCASE,
            source TEXT NOT NULL
        );
        CREATE INDEX memory_conversations_by_title ON memory_conversations (title);
        CREATE TABLE memory_state (key TEXT PRIMARY KEY, value TEXT NOT NULL);
        """
    )


def _dt(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value else None


class Store:
    """A connection to `store.sqlite`, migrated to the newest schema on open."""

    def __init__(self, path: Path | str):
        self.path = Path(path)
        if str(path) != ":memory:" and not self.path.exists():
            with contextlib.suppress(FileExistsError):  # created private: it holds messages
                os.close(os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
        self.db = sqlite3.connect(self.path)
        self.db.row_factory = sqlite3.Row
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=NORMAL")
        # 64 MB of page cache: the id index of a large import stays in memory while rows go in
        # in random id order (at the default 2 MB, each insert of a big chat reads pages back)
        self.db.execute("PRAGMA cache_size=-65536")
        self._migrate()

    def _migrate(self) -> None:
        """Bring the store to the newest schema, one transaction per migration (a kill midway
        leaves the store at the last whole version); refuse a store from a newer selftune."""
        version = self.db.execute("PRAGMA user_version").fetchone()[0]
        if version == 0 and (version := self._legacy_version()):
            self.db.execute(f"PRAGMA user_version = {version}")
        if version > len(MIGRATIONS):
            raise SelftuneError(
                f"{self.path} was written by a newer selftune (store schema {version}; this "
                f"selftune {__version__} knows {len(MIGRATIONS)}). Upgrade selftune to open it "
                "(pip install -U selftune); nothing was changed"
            )
        for number, fn in enumerate(MIGRATIONS[version:], start=version + 1):
            self.db.execute("BEGIN IMMEDIATE")
            try:
                fn(_InTransaction(self.db))  # type: ignore[arg-type]
                # the names too, for a selftune from before user_version opening this store
                self.db.execute("CREATE TABLE IF NOT EXISTS _migrations (name TEXT PRIMARY KEY)")
                self.db.execute("INSERT OR IGNORE INTO _migrations VALUES (?)", (fn.__name__,))
                self.db.execute(f"PRAGMA user_version = {number}")
                self.db.execute("COMMIT")
            except BaseException:
                self.db.execute("ROLLBACK")
                raise

    def _legacy_version(self) -> int:
        """The version of a store from before user_version: its leading `_migrations` names."""
        exists = self.db.execute(
            "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = '_migrations'"
        ).fetchone()
        if not exists:
            return 0
        done = {row[0] for row in self.db.execute("SELECT name FROM _migrations")}
        version = 0
        while version < len(MIGRATIONS) and MIGRATIONS[version].__name__ in done:
            version += 1
        return version

    def close(self) -> None:
        self.db.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- writing -------------------------------------------------------------------------------

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
        """Delete the messages that came from these origins (a message redacted at its source)
        and their place in the memory's search index; returns the ids deleted."""
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

    def apply_identity(self, me: Iterable[str]) -> None:
        """Mark messages whose author or author id is one of `me` (or in the people table) as mine."""
        names = {m.casefold() for m in me}
        names |= {r[0].casefold() for r in self.db.execute("SELECT name FROM people WHERE is_me=1")}
        # aliases of a name of mine are mine too (`selftune people --merge`)
        aliases = self.db.execute("SELECT name, alias_of FROM people WHERE alias_of IS NOT NULL")
        for name, target in aliases.fetchall():
            if target.casefold() in names:
                names.add(name.casefold())
        if not names:
            return
        marks = ",".join("?" * len(names))
        with self.db:
            self.db.execute(
                f"UPDATE messages SET is_me = 1 WHERE kind != 'system' AND ("
                f"lower(author) IN ({marks}) OR lower(coalesce(author_id, '')) IN ({marks}))",
                (*names, *names),
            )
            # in a conversation where the owner is known, everyone else is not the owner
            self.db.execute(
                "UPDATE messages SET is_me = 0 WHERE is_me IS NULL AND kind != 'system' AND "
                "conversation_id IN (SELECT conversation_id FROM messages WHERE is_me = 1)"
            )

    def set_person(
        self,
        name: str,
        *,
        alias_of: str | None = None,
        is_me: bool | None = None,
        excluded: bool | None = None,
    ) -> None:
        """Record what the owner said about a person (the fields given; None leaves one as is)."""
        with self.db:
            self.db.execute("INSERT OR IGNORE INTO people (name) VALUES (?)", (name,))
            if alias_of is not None:
                self.db.execute(
                    "UPDATE people SET alias_of = ? WHERE name = ?", (alias_of or None, name)
                )
            if is_me is not None:
                self.db.execute("UPDATE people SET is_me = ? WHERE name = ?", (int(is_me), name))
            if excluded is not None:
                self.db.execute(
                    "UPDATE people SET excluded = ? WHERE name = ?", (int(excluded), name)
                )

    def people(self) -> list[dict[str, Any]]:
        """Everyone who wrote a message, with counts, aliases merged under their main name."""
        flags = {r["name"]: dict(r) for r in self.db.execute("SELECT * FROM people")}
        rows = self.db.execute(
            "SELECT author, count(*) AS messages, sum(is_me = 1) AS mine,"
            " count(DISTINCT conversation_id) AS conversations,"
            " group_concat(DISTINCT source) AS sources, min(timestamp) AS first,"
            " max(timestamp) AS last FROM messages WHERE author != '' GROUP BY author"
        ).fetchall()
        people: dict[str, dict[str, Any]] = {}
        for r in rows:
            main = self._main_name(r["author"], flags)
            person = people.setdefault(
                main,
                {
                    "name": main,
                    "aliases": [],
                    "messages": 0,
                    "conversations": 0,
                    "sources": set(),
                    "is_me": bool(flags.get(main, {}).get("is_me")),
                    "excluded": bool(flags.get(main, {}).get("excluded")),
                },
            )
            if r["author"] != main:
                person["aliases"].append(r["author"])
            person["messages"] += r["messages"]
            person["conversations"] += r["conversations"]
            person["sources"] |= set((r["sources"] or "").split(","))
            person["is_me"] = person["is_me"] or bool(r["mine"])
        for person in people.values():
            person["sources"] = sorted(person["sources"])
        return sorted(people.values(), key=lambda p: (-p["messages"], p["name"]))

    @staticmethod
    def _main_name(name: str, flags: dict[str, dict[str, Any]]) -> str:
        seen = {name}
        while flags.get(name, {}).get("alias_of") and flags[name]["alias_of"] not in seen:
            name = flags[name]["alias_of"]
            seen.add(name)
        return name

    # -- reading -------------------------------------------------------------------------------

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

    def excluded_people(self) -> set[str]:
        """Names (and aliases of names) whose messages must never be trained on."""
        flags = {r["name"]: dict(r) for r in self.db.execute("SELECT * FROM people")}
        excluded = {name for name, f in flags.items() if f["excluded"]}
        return excluded | {name for name in flags if self._main_name(name, flags) in excluded}

    def excluded_keys(self) -> set[str]:
        """Case-folded names, aliases and author ids of everyone excluded: a message is left out
        when its author or author id is one of these (a renamed contact with the same id too)."""
        keys = {n.casefold() for n in self.excluded_people()}
        if not keys:
            return keys
        marks = ",".join("?" * len(keys))
        rows = self.db.execute(
            f"SELECT DISTINCT author, author_id FROM messages WHERE lower(author) IN ({marks})"
            f" OR lower(coalesce(author_id, '')) IN ({marks})",
            (*keys, *keys),
        )
        for author, author_id in rows:
            keys |= {v.casefold() for v in (author, author_id) if v}
        return keys

    def match_person(self, name: str) -> list[str]:
        """Every spelling in the store of the person `name` names, in any letter case: message
        authors, author ids, and names the owner gave in `selftune people`."""
        key = " ".join(name.split()).casefold()
        found = self.db.execute(
            "SELECT author FROM messages WHERE lower(author) = ?"
            " UNION SELECT author_id FROM messages WHERE lower(author_id) = ?"
            " UNION SELECT name FROM people WHERE lower(name) = ?",
            (key, key, key),
        ).fetchall()
        spellings = {r[0] for r in found if r[0]}
        if not spellings:  # lower() in SQLite folds ASCII only
            names = self.db.execute(
                "SELECT author FROM messages UNION SELECT author_id FROM messages"
                " UNION SELECT name FROM people"
            ).fetchall()
            spellings = {r[0] for r in names if r[0] and " ".join(r[0].split()).casefold() == key}
        return sorted(spellings)

    def known_names(self) -> list[str]:
        """Every author and name in the store (for 'did you mean')."""
        rows = self.db.execute(
            "SELECT author FROM messages WHERE author != '' UNION SELECT name FROM people"
        ).fetchall()
        return sorted(r[0] for r in rows)

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
