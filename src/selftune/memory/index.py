"""The memory's search index over the store: SQLite FTS5 over message text (external content, so
the text is kept once, in `messages`), each message's UTC time and conversation, and who wrote in
which conversation. Tables come from the store's migration `m004_memory_index`; the SQL that
reads and writes them is in `selftune.store.memory_index`, this module decides what is indexed
and what a search asks for.

`update_index` is incremental (only rows added since the last call) and is run by `ingest`; the
memory also calls it before it answers, so an index is never behind the store. Messages of
conversations with an excluded or forgotten contact are never indexed and never returned.
"""

from __future__ import annotations

import contextlib
import os
import re
import sqlite3
import threading
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime

from selftune.store import Store
from selftune.store.memory_index import (
    add_contacts_between,
    add_conversations_between,
    best_matches,
    best_matches_before,
    contact_conversations,
    index_between,
    index_state,
    indexed_count,
    latest_before,
    match_count,
    neighbours,
    newest_message_rowid,
    set_index_state,
    unindex_in_transaction,
)

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


_EXCLUDED_CACHE: dict[tuple, set[str]] = {}


def excluded_conversations(store: Store, cached: bool = True) -> set[str]:
    """Conversations in which an excluded (or forgotten) contact wrote, matched as the build
    matches them (`Store.excluded_keys`: names, aliases and author ids, in any case): never in
    memory. Cached until the index grows or the exclusions change."""
    names = store.excluded_people()
    if not names:
        return set()
    key = (str(store.path), index_state(store, "last_rowid"), frozenset(names))
    if key not in _EXCLUDED_CACHE or not cached:
        found = contact_conversations(store, store.excluded_keys())
        _EXCLUDED_CACHE.clear()
        _EXCLUDED_CACHE[key] = found
    return _EXCLUDED_CACHE[key]


def update_index(store: Store) -> int:
    """Index the messages added since the last update; returns how many were indexed. Text
    messages are indexed, but none of a conversation an excluded contact wrote in (this update's
    messages count: their authors are recorded first)."""
    last = int(index_state(store, "last_rowid"))
    top = newest_message_rowid(store)
    if top <= last:
        return 0
    with store.indexes_deferred("memory_meta"), store.transaction():
        add_contacts_between(store, last, top)
        add_conversations_between(store, last, top)
        skip = excluded_conversations(store, cached=False)
        # a contact excluded before, first seen writing now: what earlier updates indexed of
        # their conversation goes too
        unindex_in_transaction(store, skip)
        added = index_between(store, last, top, kinds=("text",), skip=skip)
        set_index_state(store, "last_rowid", str(top))
    return added


# "auto": follow on a thread only when a core is idle; "always" / "never" (benchmarks, tests)
FOLLOW = "auto"


def _thread_pays() -> bool:
    """Whether a second thread gets a core of its own. On a busy machine it does not, and two
    threads handing the GIL to each other across one starved core run 3-4x slower than one."""
    if FOLLOW != "auto":
        return FOLLOW == "always"
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return (cores or 1) >= 2 and os.getloadavg()[0] <= (cores or 1) - 1


@contextlib.contextmanager
def following(store: Store) -> Iterator[Callable[[], None]]:
    """While the block loads messages into `store`, index each committed batch on a second
    thread with its own connection: the index's statements run inside SQLite without the GIL,
    so they overlap the parsing of the next batch. Yields `committed`, to call after each
    commit. The `update_index` after the block catches up with the rest (and is what counts:
    a follower that finds the store busy leaves its batch to it)."""
    if str(store.path) == ":memory:" or not _thread_pays():
        yield lambda: None  # everything is indexed by the update after the load
        return
    wake, stop = threading.Event(), threading.Event()
    failed: list[BaseException] = []

    def follow() -> None:
        other = store.companion()
        try:
            while True:
                wake.wait()
                wake.clear()
                if stop.is_set():
                    return
                update_index(other)
        except sqlite3.OperationalError:
            return  # busy or locked beyond the wait: the update after the load does this part
        except BaseException as exc:  # noqa: BLE001 - raised again on the caller's thread
            failed.append(exc)
        finally:
            other.close()

    thread = threading.Thread(target=follow, name="selftune-index-follower", daemon=True)
    thread.start()
    try:
        yield wake.set
    finally:
        stop.set()
        wake.set()
        thread.join()
    if failed:
        raise failed[0]


def _hits(rows: Iterable[sqlite3.Row | tuple]) -> list[Hit]:
    return [
        Hit(r[0], r[1], r[2], r[3], bool(r[4]), r[5], r[6] if len(r) > 6 else 0.0) for r in rows
    ]


def document_counts(store: Store, words: list[str]) -> dict[str, int]:
    """How many indexed messages hold each word (cached until the index grows)."""
    generation = int(index_state(store, "last_rowid"))
    key = (str(store.path.resolve()), generation)
    cache = _DF_CACHE.get(key)
    if cache is None:
        _DF_CACHE.clear()  # one store, one generation at a time is all a process needs
        cache = _DF_CACHE[key] = {}
    if TOTAL in words and TOTAL not in cache:
        cache[TOTAL] = indexed_count(store)
    for word in words:
        if word not in cache:
            cache[word] = match_count(store, match_expression([word]))
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
    fast = best_matches(store, expr, 4 * limit)
    found = [h for h in _hits(fast) if h.ts < before]
    if len(found) >= limit or len(fast) < 4 * limit:
        return found[:limit]
    return _hits(best_matches_before(store, expr, before, limit))


def recent(store: Store, conversation_id: str, before: float, k: int) -> list[Hit]:
    """The last `k` indexed messages of a conversation strictly before `before`, oldest first."""
    if k <= 0:
        return []
    return list(reversed(_hits(latest_before(store, conversation_id, before, k))))


def around(store: Store, hit: Hit, before: float) -> list[Hit]:
    """`hit` with the message before it and the one after it in its conversation, all strictly
    before `before`, in time order."""
    prev, after = neighbours(store, hit.conversation_id, hit.ts, hit.rowid, before)
    return [*_hits(prev), hit, *_hits(after)]
