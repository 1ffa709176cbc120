"""The SQL of the memory (`selftune.memory`): its search index over messages (tables from the
migration `m004_memory_index`: FTS5 over message text with external content, each indexed
message's UTC time and conversation, who wrote in which conversation, each conversation's
title) and the reads the memory makes of messages (the owner's texts, frequent contacts).

What to index, which words to search for and how to rank and budget is decided in
`selftune.memory`; these functions only read and write. Rows of hits are
(rowid, ts, conversation_id, author, is_me, text[, rank]).
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable

from selftune.store.connection import Store

HIT_COLUMNS = "x.rowid, x.ts, x.conversation_id, m.author, coalesce(m.is_me, 0), m.text"
_INDEXED = " FROM memory_meta x JOIN messages m ON m.rowid = x.rowid"


def _marks(values: Iterable[object]) -> str:
    return ",".join("?" for _ in values)


# -- keeping the index ----------------------------------------------------------------------


def index_state(store: Store, key: str, default: str = "0") -> str:
    row = store.db.execute("SELECT value FROM memory_state WHERE key = ?", (key,)).fetchone()
    return row[0] if row else default


def set_index_state(store: Store, key: str, value: str) -> None:
    store.db.execute("INSERT OR REPLACE INTO memory_state VALUES (?, ?)", (key, value))


def newest_message_rowid(store: Store) -> int:
    return int(store.db.execute("SELECT coalesce(max(rowid), 0) FROM messages").fetchone()[0])


# every character Python's str.strip() removes, so SQL's trim() finds the same blank texts
_WHITESPACE = "".join(chr(c) for c in range(0x3001) if chr(c).isspace())


def add_contacts_between(store: Store, after: int, upto: int) -> None:
    """Record who wrote in which conversation, for the messages with rowid in (after, upto]."""
    store.db.execute(
        "INSERT OR IGNORE INTO memory_contacts SELECT DISTINCT author, conversation_id"
        " FROM messages WHERE rowid > ? AND rowid <= ? AND author != ''",
        (after, upto),
    )


def add_conversations_between(store: Store, after: int, upto: int) -> None:
    """Record each conversation's title and source, as its newest message in (after, upto]
    gives them."""
    store.db.execute(
        "INSERT OR REPLACE INTO memory_conversations SELECT conversation_id, conversation_title,"
        " source FROM (SELECT conversation_id, conversation_title, source, max(rowid)"
        " FROM messages WHERE rowid > ? AND rowid <= ? GROUP BY conversation_id)",
        (after, upto),
    )


def index_between(
    store: Store, after: int, upto: int, kinds: Iterable[str], skip: Iterable[str]
) -> int:
    """Index for search the messages with rowid in (after, upto] of the given kinds, with text
    that is not blank, outside the `skip` conversations; in bulk, inside SQLite (the text never
    comes back to Python). Returns how many were indexed."""
    kinds, skip = tuple(kinds), tuple(skip)
    where = (
        f" FROM messages WHERE rowid > ? AND rowid <= ? AND kind IN ({_marks(kinds)})"
        " AND trim(text, ?) != ''"
        " AND conversation_id NOT IN (SELECT value FROM json_each(?))"
    )
    args = (after, upto, *kinds, _WHITESPACE, json.dumps(skip))
    # "2024-03-14T09:12:44+01:00" (whole seconds, an offset in minutes: what nearly every export
    # gives) in SQLite's own unixepoch, the same number; any other shape through Python
    # (`selftune_epoch`, each connection has it). No
    # Python per row lets the statement run without the GIL (an index follower on its thread).
    cur = store.db.execute(
        "INSERT OR REPLACE INTO memory_meta SELECT rowid, CASE WHEN length(timestamp) = 25"
        " AND substr(timestamp, 20, 1) IN ('+', '-') THEN unixepoch(timestamp)"
        " ELSE selftune_epoch(timestamp) END, conversation_id" + where,
        args,
    )
    store.db.execute(
        "INSERT INTO memory_fts (rowid, text) SELECT m.rowid, m.text FROM memory_meta x"
        " JOIN messages m ON m.rowid = x.rowid WHERE x.rowid > ? AND x.rowid <= ?",
        (after, upto),
    )
    return cur.rowcount


def unindex_conversations(store: Store, conversation_ids: Iterable[str]) -> int:
    """Take every message of these conversations out of the search; returns how many."""
    with store.db:
        return unindex_in_transaction(store, conversation_ids)


def unindex_in_transaction(store: Store, conversation_ids: Iterable[str]) -> int:
    """`unindex_conversations` inside the caller's transaction."""
    removed = 0
    for cid in set(conversation_ids):
        rows = store.db.execute(
            "SELECT m.rowid, m.text" + _INDEXED + " WHERE x.conversation_id = ?", (cid,)
        ).fetchall()
        store.db.executemany(
            "INSERT INTO memory_fts (memory_fts, rowid, text) VALUES ('delete', ?, ?)",
            [(r[0], r[1]) for r in rows],
        )
        store.db.execute("DELETE FROM memory_meta WHERE conversation_id = ?", (cid,))
        removed += len(rows)
    return removed


# -- searching ------------------------------------------------------------------------------


def indexed_count(store: Store) -> int:
    return int(store.db.execute("SELECT count(*) FROM memory_meta").fetchone()[0])


def match_count(store: Store, expression: str) -> int:
    """How many indexed messages match the FTS5 `expression`."""
    return int(
        store.db.execute(
            "SELECT count(*) FROM memory_fts WHERE memory_fts MATCH ?", (expression,)
        ).fetchone()[0]
    )


def best_matches(store: Store, expression: str, limit: int) -> list[sqlite3.Row]:
    """The `limit` best (bm25) matches of `expression`, whatever their time, best first."""
    return store.db.execute(
        f"SELECT {HIT_COLUMNS}, f.rank FROM (SELECT rowid, rank FROM memory_fts"
        " WHERE memory_fts MATCH ? ORDER BY rank LIMIT ?) f"
        " JOIN memory_meta x ON x.rowid = f.rowid JOIN messages m ON m.rowid = f.rowid"
        " ORDER BY f.rank",
        (expression, limit),
    ).fetchall()


def best_matches_before(
    store: Store, expression: str, before: float, limit: int
) -> list[sqlite3.Row]:
    """The `limit` best matches of `expression` strictly before `before` (epoch seconds)."""
    return store.db.execute(
        f"SELECT {HIT_COLUMNS}, f.rank FROM memory_fts f"
        " JOIN memory_meta x ON x.rowid = f.rowid JOIN messages m ON m.rowid = f.rowid"
        " WHERE memory_fts MATCH ? AND x.ts < ? ORDER BY f.rank LIMIT ?",
        (expression, before, limit),
    ).fetchall()


def latest_before(store: Store, conversation_id: str, before: float, k: int) -> list[sqlite3.Row]:
    """The last `k` indexed messages of a conversation strictly before `before`, newest first."""
    return store.db.execute(
        f"SELECT {HIT_COLUMNS}" + _INDEXED + " WHERE x.conversation_id = ? AND x.ts < ?"
        " ORDER BY x.ts DESC, x.rowid DESC LIMIT ?",
        (conversation_id, before, k),
    ).fetchall()


def neighbours(
    store: Store, conversation_id: str, ts: float, rowid: int, before: float
) -> tuple[list[sqlite3.Row], list[sqlite3.Row]]:
    """The indexed message just before (ts, rowid) in its conversation and the one just after
    it (if that is strictly before `before`), each as a list of at most one row."""
    prev = store.db.execute(
        f"SELECT {HIT_COLUMNS}" + _INDEXED + " WHERE x.conversation_id = ?"
        " AND (x.ts < ? OR (x.ts = ? AND x.rowid < ?)) ORDER BY x.ts DESC, x.rowid DESC LIMIT 1",
        (conversation_id, ts, ts, rowid),
    ).fetchall()
    after = store.db.execute(
        f"SELECT {HIT_COLUMNS}" + _INDEXED + " WHERE x.conversation_id = ?"
        " AND (x.ts > ? OR (x.ts = ? AND x.rowid > ?)) AND x.ts < ? ORDER BY x.ts, x.rowid LIMIT 1",
        (conversation_id, ts, ts, rowid, before),
    ).fetchall()
    return prev, after


# -- conversations and contacts ---------------------------------------------------------------


def contact_conversations(store: Store, authors: Iterable[str]) -> set[str]:
    """Conversations in which any of `authors` wrote (any case: the column is NOCASE)."""
    names = tuple({a for a in authors if a})
    if not names:
        return set()
    rows = store.db.execute(
        f"SELECT DISTINCT conversation_id FROM memory_contacts WHERE author IN ({_marks(names)})",
        names,
    )
    return {r[0] for r in rows}


def conversation_by_title(store: Store, title: str, source: str | None = None) -> str | None:
    """The indexed conversation called `title` (any case), on `source` when given."""
    query = "SELECT conversation_id FROM memory_conversations WHERE title = ?"
    args: tuple[str, ...] = (title.strip(),)
    if source:
        query += " AND source = ?"
        args += (source,)
    row = store.db.execute(query + " LIMIT 1", args).fetchone()
    return row[0] if row else None


def conversation_titles(store: Store, conversation_ids: Iterable[str]) -> list[str]:
    """The titles of these conversations, each once."""
    ids = tuple(conversation_ids)
    if not ids:
        return []
    rows = store.db.execute(
        f"SELECT DISTINCT conversation_title FROM messages WHERE conversation_id IN ({_marks(ids)})",
        ids,
    ).fetchall()
    return [r[0] for r in rows]


def indexed_span(
    store: Store, conversation_ids: Iterable[str]
) -> tuple[int, float | None, float | None]:
    """How many indexed messages these conversations hold, and the first and last one's time
    (None when there are none)."""
    ids = tuple(conversation_ids)
    marks = _marks(ids) or "''"
    row = store.db.execute(
        f"SELECT count(*), min(ts), max(ts) FROM memory_meta WHERE conversation_id IN ({marks})",
        ids,
    ).fetchone()
    return row[0], row[1], row[2]


def contacts_in(store: Store, conversation_id: str) -> tuple[str, ...]:
    """Everyone but the owner who wrote in a conversation."""
    rows = store.db.execute(
        "SELECT DISTINCT author FROM messages WHERE conversation_id = ?"
        " AND coalesce(is_me, 0) = 0 AND author != ''",
        (conversation_id,),
    )
    return tuple(r[0] for r in rows)


def owner_texts(store: Store) -> sqlite3.Cursor:
    """(text, origin) of every text message of the owner's, oldest first."""
    return store.db.execute(
        "SELECT text, origin FROM messages WHERE is_me = 1 AND kind = 'text' ORDER BY timestamp"
    )


def frequent_contacts(store: Store, limit: int) -> list[tuple[str, int, str]]:
    """The `limit` contacts with the most text messages: (author, count, an origin)."""
    rows = store.db.execute(
        "SELECT author, count(*) AS n, min(origin) FROM messages WHERE coalesce(is_me, 0) = 0"
        " AND author != '' AND kind = 'text' GROUP BY author ORDER BY n DESC LIMIT ?",
        (limit,),
    ).fetchall()
    return [(r[0], r[1], r[2]) for r in rows]


def index_stats(store: Store) -> dict[str, int]:
    """How many messages and conversations the search holds."""
    return {
        "indexed_messages": indexed_count(store),
        "conversations": store.db.execute(
            "SELECT count(DISTINCT conversation_id) FROM memory_meta"
        ).fetchone()[0],
    }


def alias_links(store: Store) -> list[tuple[str, str]]:
    """(name, main name) of every alias the owner recorded (`selftune people --merge`)."""
    rows = store.db.execute(
        "SELECT name, alias_of FROM people WHERE alias_of IS NOT NULL AND alias_of != ''"
    ).fetchall()
    return [(r[0], r[1]) for r in rows]


def conversation_authors(store: Store, conversation_ids: Iterable[str]) -> dict[str, set[str]]:
    """Who wrote in each of these conversations (the owner included), from the index."""
    ids = tuple(set(conversation_ids))
    out: dict[str, set[str]] = {c: set() for c in ids}
    if not ids:
        return out
    rows = store.db.execute(
        f"SELECT conversation_id, author FROM memory_contacts WHERE conversation_id IN ({_marks(ids)})",
        ids,
    )
    for cid, author in rows:
        out[cid].add(author)
    return out


def indexed_conversations(store: Store) -> list[str]:
    """Every conversation the search holds messages of, in id order."""
    rows = store.db.execute("SELECT DISTINCT conversation_id FROM memory_meta ORDER BY 1")
    return [r[0] for r in rows]
