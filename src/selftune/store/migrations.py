"""The store's schema: numbered migrations, one function each, run in order by the connection's
migration runner (`connection.py`). Nothing else creates tables.

A new table or column is a new `mNNN_` function at the end; a migration that shipped is never
edited (stores already carry its version in `PRAGMA user_version`).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable

MIGRATIONS: list[Callable[[sqlite3.Connection], None]] = []

# Indexes a load into an empty table drops while it writes and builds again after it (one
# sorted pass instead of an update per row, in random order for the ids), by table, as the
# migrations below create them. The store builds any that is missing each time it opens (an
# import killed mid-load). While `messages_by_id` is dropped the load itself keeps ids unique.
DEFERRABLE_INDEXES: dict[str, dict[str, str]] = {
    "messages": {
        "messages_by_id": "UNIQUE INDEX messages_by_id ON messages (id)",
        "messages_by_conversation": "INDEX messages_by_conversation"
        " ON messages (conversation_id, timestamp)",
    },
    "memory_meta": {
        "memory_meta_by_conversation": "INDEX memory_meta_by_conversation"
        " ON memory_meta (conversation_id, ts)",
    },
}


def migration(fn: Callable[[sqlite3.Connection], None]) -> Callable[[sqlite3.Connection], None]:
    """Register a schema migration; they run in definition order, each exactly once, each in one
    transaction with the schema version (`PRAGMA user_version`) it brings the store to."""
    MIGRATIONS.append(fn)
    return fn


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


MESSAGE_COLUMNS = (
    "id, source, conversation_id, conversation_title, conversation_kind, timestamp, author,"
    " author_id, is_me, kind, text, reply_to, origin, extra, import_id"
)


@migration
def m005_message_id_index(db: sqlite3.Connection) -> None:
    """`messages.id` was the table's primary key, an index a first import had to keep up row by
    row in random id order; it becomes a unique index of its own (`messages_by_id`) that such a
    load drops and builds once at the end. The table is rebuilt with every row, its id and its
    rowid (the memory's search index refers to rows by rowid)."""
    db.executescript(
        f"""
        CREATE TABLE messages_rebuilt (
            id TEXT NOT NULL,
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
        INSERT INTO messages_rebuilt (rowid, {MESSAGE_COLUMNS})
            SELECT rowid, {MESSAGE_COLUMNS} FROM messages ORDER BY rowid;
        DROP TABLE messages;
        ALTER TABLE messages_rebuilt RENAME TO messages;
        CREATE UNIQUE INDEX messages_by_id ON messages (id);
        CREATE INDEX messages_by_conversation ON messages (conversation_id, timestamp);
        """
    )
