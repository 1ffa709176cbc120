"""The memory's search index over the store: SQLite FTS5 over message text (external content, so
the text is kept once, in `messages`), each message's UTC time and conversation, and who wrote in
which conversation. Tables come from the store's migration `m004_memory_index`.

`update_index` is incremental (only rows added since the last call) and is run by `ingest`; the
memory also calls it before it answers, so an index is never behind the store. Messages of
conversations with an excluded or forgotten contact are never indexed and never returned.
"""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from selftune.store import Store

WORD = re.compile(r"[^\W_]+(?:['’][^\W_]+)?", re.UNICODE)
# words too common to say what a message is about (English; other languages fall back to bm25)
_STOP_TEXT = """a about above after again against all am an and any are aren't as at be because been before
    being below between both but by can can't could couldn't did didn't do does doesn't doing don't
    down during each few for from further get got had hadn't has hasn't have haven't having he he'd
    he'll he's her here here's hers herself him himself his how how's i i'd i'll i'm i've if in
    into is isn't it it's its itself just let's me more most mustn't my myself no nor not now of
    off ok okay on once only or other ought our ours ourselves out over own same shan't she she'd
    she'll she's should shouldn't so some such than that that's the their theirs them themselves
    then there there's these they they'd they'll they're they've this those through to too under
    until up very was wasn't we we'd we'll we're we've were weren't what what's when when's where
    where's which while who who's whom why why's will with won't would wouldn't yes yeah you you'd
    you'll you're you've your yours yourself yourselves lol haha oh hey hi hello thanks thank x xx
    really also still well one two like know think going want need see say said tell ask come
    go yet sure right good great"""
STOPWORDS = frozenset(_STOP_TEXT.split())
MAX_TERMS = 16
BATCH = 5000
# a word in more than this share of messages says little about any of them (and ranking all
# its messages costs hundreds of milliseconds on a big store): it is left out of the search
MAX_DOC_SHARE = 0.01
MIN_DOC_LIMIT = 50
SEARCH_TERMS = 8
_DF_CACHE: dict[tuple[str, int], dict[str, int]] = {}
TOTAL = "\x00all"  # the cache's entry for the number of indexed messages


def terms(text: str, limit: int = MAX_TERMS) -> list[str]:
    """The words of `text` that say what it is about: lowercased, no stopwords, each once,
    longest first (longer words are rarer) up to `limit`."""
    seen: dict[str, None] = {}
    for word in WORD.findall(text.casefold().replace("’", "'")):
        if len(word) > 1 and word not in STOPWORDS:
            seen.setdefault(word, None)
    return sorted(seen, key=len, reverse=True)[:limit]


def match_expression(words: Iterable[str]) -> str:
    """An FTS5 query matching any of `words` (each quoted, so no word is read as an operator)."""
    return " OR ".join('"' + w.replace('"', '""') + '"' for w in words)


def epoch(when: datetime) -> float:
    """Seconds since 1970 (UTC); a naive time is taken as local time, as exports date messages."""
    return (when if when.tzinfo else when.astimezone()).timestamp()


@dataclass
class Hit:
    rowid: int
    ts: float
    conversation_id: str
    author: str
    is_me: bool
    text: str
    score: float = 0.0  # bm25: lower is more relevant


def _state(db: sqlite3.Connection, key: str, default: str = "0") -> str:
    row = db.execute("SELECT value FROM memory_state WHERE key = ?", (key,)).fetchone()
    return row[0] if row else default


_EXCLUDED_CACHE: dict[tuple, set[str]] = {}


def excluded_conversations(store: Store, cached: bool = True) -> set[str]:
    """Conversations in which an excluded (or forgotten) contact wrote, matched as the build
    matches them (`Store.excluded_keys`: names, aliases and author ids, in any case): never in
    memory. Cached until the index grows or the exclusions change."""
    names = store.excluded_people()
    if not names:
        return set()
    key = (str(store.path), _state(store.db, "last_rowid"), frozenset(names))
    if key not in _EXCLUDED_CACHE or not cached:
        keys = store.excluded_keys()
        marks = ",".join("?" * len(keys))
        rows = store.db.execute(  # memory_contacts.author compares without case
            f"SELECT DISTINCT conversation_id FROM memory_contacts WHERE author IN ({marks})",
            tuple(keys),
        )
        _EXCLUDED_CACHE.clear()
        _EXCLUDED_CACHE[key] = {r[0] for r in rows}
    return _EXCLUDED_CACHE[key]


def update_index(store: Store) -> int:
    """Index the messages added since the last update; returns how many were indexed."""
    db = store.db
    last = int(_state(db, "last_rowid"))
    top = db.execute("SELECT coalesce(max(rowid), 0) FROM messages").fetchone()[0]
    if top <= last:
        return 0
    added = 0
    with db:
        while last < top:
            rows = db.execute(
                "SELECT rowid, timestamp, conversation_id, author, kind, text, conversation_title,"
                " source FROM messages"
                " WHERE rowid > ? ORDER BY rowid LIMIT ?",
                (last, BATCH),
            ).fetchall()
            if not rows:
                break
            last = rows[-1][0]
            db.executemany(
                "INSERT OR IGNORE INTO memory_contacts VALUES (?, ?)",
                {(r[3], r[2]) for r in rows if r[3]},
            )
            db.executemany(
                "INSERT OR REPLACE INTO memory_conversations VALUES (?, ?, ?)",
                {r[2]: (r[2], r[6], r[7]) for r in rows}.values(),
            )
            skip = excluded_conversations(store, cached=False)  # this batch's contacts count
            keep = [r for r in rows if r[4] == "text" and r[5].strip() and r[2] not in skip]
            db.executemany(
                "INSERT OR REPLACE INTO memory_meta VALUES (?, ?, ?)",
                [(r[0], epoch(datetime.fromisoformat(r[1])), r[2]) for r in keep],
            )
            db.executemany(
                "INSERT INTO memory_fts (rowid, text) VALUES (?, ?)", [(r[0], r[5]) for r in keep]
            )
            added += len(keep)
        db.execute(
            "INSERT OR REPLACE INTO memory_state VALUES ('last_rowid', ?)", (str(max(last, top)),)
        )
    return added


def rebuild_index(store: Store) -> int:
    """Drop and rebuild the whole index (after messages were deleted from the store)."""
    with store.db:
        store.db.execute("INSERT INTO memory_fts (memory_fts) VALUES ('delete-all')")
        store.db.execute("DELETE FROM memory_meta")
        store.db.execute("DELETE FROM memory_contacts")
        store.db.execute("DELETE FROM memory_conversations")
        store.db.execute("DELETE FROM memory_state WHERE key = 'last_rowid'")
    return update_index(store)


def remove_conversations(store: Store, conversation_ids: Iterable[str]) -> int:
    """Take every message of these conversations out of the index; returns how many."""
    removed = 0
    with store.db:
        for cid in set(conversation_ids):
            rows = store.db.execute(
                "SELECT m.rowid, m.text FROM memory_meta x JOIN messages m ON m.rowid = x.rowid"
                " WHERE x.conversation_id = ?",
                (cid,),
            ).fetchall()
            store.db.executemany(
                "INSERT INTO memory_fts (memory_fts, rowid, text) VALUES ('delete', ?, ?)",
                [(r[0], r[1]) for r in rows],
            )
            store.db.execute("DELETE FROM memory_meta WHERE conversation_id = ?", (cid,))
            removed += len(rows)
    return removed


def _hits(store: Store, rows: Iterable[sqlite3.Row | tuple]) -> list[Hit]:
    return [
        Hit(r[0], r[1], r[2], r[3], bool(r[4]), r[5], r[6] if len(r) > 6 else 0.0) for r in rows
    ]


HIT_COLUMNS = "x.rowid, x.ts, x.conversation_id, m.author, coalesce(m.is_me, 0), m.text"


def document_counts(store: Store, words: list[str]) -> dict[str, int]:
    """How many indexed messages hold each word (cached until the index grows)."""
    generation = int(_state(store.db, "last_rowid"))
    key = (str(store.path.resolve()), generation)
    cache = _DF_CACHE.get(key)
    if cache is None:
        _DF_CACHE.clear()  # one store, one generation at a time is all a process needs
        cache = _DF_CACHE[key] = {}
    if TOTAL in words and TOTAL not in cache:
        cache[TOTAL] = store.db.execute("SELECT count(*) FROM memory_meta").fetchone()[0]
    for word in words:
        if word not in cache:
            cache[word] = store.db.execute(
                "SELECT count(*) FROM memory_fts WHERE memory_fts MATCH ?",
                (match_expression([word]),),
            ).fetchone()[0]
    return {w: cache[w] for w in words}


def informative(store: Store, words: list[str]) -> list[str]:
    """The words worth searching for: held by some messages but not by too many, rarest first."""
    counts = document_counts(store, [*words, TOTAL])
    limit = max(MIN_DOC_LIMIT, int(counts.pop(TOTAL) * MAX_DOC_SHARE))
    kept = sorted((n, w) for w, n in counts.items() if 0 < n <= limit)
    return [w for _, w in kept[:SEARCH_TERMS]]


def search(store: Store, words: list[str], before: float, limit: int = 50) -> list[Hit]:
    """Messages matching any of `words` (the informative ones), most relevant first (bm25), all
    strictly before `before` (epoch seconds). The top of the ranking is read first; only when
    too little of it is old enough is the time filter applied inside the query."""
    words = informative(store, words)
    if not words:
        return []
    expr = match_expression(words)
    db = store.db
    fast = db.execute(
        f"SELECT {HIT_COLUMNS}, f.rank FROM (SELECT rowid, rank FROM memory_fts"
        " WHERE memory_fts MATCH ? ORDER BY rank LIMIT ?) f"
        " JOIN memory_meta x ON x.rowid = f.rowid JOIN messages m ON m.rowid = f.rowid"
        " ORDER BY f.rank",
        (expr, 4 * limit),
    ).fetchall()
    found = [h for h in _hits(store, fast) if h.ts < before]
    if len(found) >= limit or len(fast) < 4 * limit:
        return found[:limit]
    slow = db.execute(
        f"SELECT {HIT_COLUMNS}, f.rank FROM memory_fts f"
        " JOIN memory_meta x ON x.rowid = f.rowid JOIN messages m ON m.rowid = f.rowid"
        " WHERE memory_fts MATCH ? AND x.ts < ? ORDER BY f.rank LIMIT ?",
        (expr, before, limit),
    ).fetchall()
    return _hits(store, slow)


def recent(store: Store, conversation_id: str, before: float, k: int) -> list[Hit]:
    """The last `k` indexed messages of a conversation strictly before `before`, oldest first."""
    if k <= 0:
        return []
    rows = store.db.execute(
        f"SELECT {HIT_COLUMNS} FROM memory_meta x JOIN messages m ON m.rowid = x.rowid"
        " WHERE x.conversation_id = ? AND x.ts < ? ORDER BY x.ts DESC, x.rowid DESC LIMIT ?",
        (conversation_id, before, k),
    ).fetchall()
    return list(reversed(_hits(store, rows)))


def around(store: Store, hit: Hit, before: float) -> list[Hit]:
    """`hit` with the message before it and the one after it in its conversation, all strictly
    before `before`, in time order."""
    db = store.db
    prev = db.execute(
        f"SELECT {HIT_COLUMNS} FROM memory_meta x JOIN messages m ON m.rowid = x.rowid"
        " WHERE x.conversation_id = ? AND (x.ts < ? OR (x.ts = ? AND x.rowid < ?))"
        " ORDER BY x.ts DESC, x.rowid DESC LIMIT 1",
        (hit.conversation_id, hit.ts, hit.ts, hit.rowid),
    ).fetchall()
    after = db.execute(
        f"SELECT {HIT_COLUMNS} FROM memory_meta x JOIN messages m ON m.rowid = x.rowid"
        " WHERE x.conversation_id = ? AND (x.ts > ? OR (x.ts = ? AND x.rowid > ?)) AND x.ts < ?"
        " ORDER BY x.ts, x.rowid LIMIT 1",
        (hit.conversation_id, hit.ts, hit.ts, hit.rowid, before),
    ).fetchall()
    return [*_hits(store, prev), hit, *_hits(store, after)]


def contact_conversations(store: Store, contacts: Iterable[str]) -> set[str]:
    """Conversations in which any of `contacts` wrote (any case)."""
    names = {c for c in contacts if c}
    if not names:
        return set()
    marks = ",".join("?" * len(names))
    rows = store.db.execute(  # the column compares without case (COLLATE NOCASE)
        f"SELECT conversation_id FROM memory_contacts WHERE author IN ({marks})", tuple(names)
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


def stats(store: Store) -> dict[str, int]:
    db = store.db
    return {
        "indexed_messages": db.execute("SELECT count(*) FROM memory_meta").fetchone()[0],
        "conversations": db.execute(
            "SELECT count(DISTINCT conversation_id) FROM memory_meta"
        ).fetchone()[0],
    }
