"""The connection to `store.sqlite`: `Store` opens it (created private, WAL, a large page cache),
runs the migrations it has not run yet (one transaction each, recorded in `PRAGMA user_version`)
and refuses a store written by a newer selftune. Its query methods come from `messages.py` and
`people.py`; the sample log (`samples.py`) and the memory index (`memory_index.py`) use it too.

`read_foreign` reads another program's SQLite file (iMessage's chat.db), read-only.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import threading
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

from selftune import __version__
from selftune.errors import SelftuneError
from selftune.store import migrations
from selftune.store.messages import MessageTables, UnindexedLoad
from selftune.store.people import PeopleTables


def _epoch_of_iso(value: str) -> float:
    """Seconds since 1970 (UTC) of a stored ISO time; a naive one is local time (as exports date
    messages): the same number `selftune.memory.index.epoch` gives for the parsed time."""
    return datetime.fromisoformat(value).timestamp()


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


class Store(MessageTables, PeopleTables):
    """A connection to `store.sqlite`, migrated to the newest schema on open."""

    unindexed_load: UnindexedLoad | None = None  # a first import's, while `messages_by_id` is off

    def __init__(self, path: Path | str):
        self.path = Path(path)
        if str(path) != ":memory:" and not self.path.exists():
            with contextlib.suppress(FileExistsError):  # created private: it holds messages
                os.close(os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
        # held around a write transaction by this connection and its companions: one waits for
        # the other on this lock (woken at once) rather than in SQLite's busy handler (which
        # sleeps in steps of up to 100 ms)
        self.writing = threading.RLock()
        self._connect()
        self._migrate()
        self._build_missing_indexes()

    def _connect(self) -> None:
        # a writer waits up to 30 s for the other's transaction (an import's index follower)
        self.db = sqlite3.connect(self.path, timeout=30)
        self.db.row_factory = sqlite3.Row
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=NORMAL")
        # 64 MB of page cache: the id index of a large import stays in memory while rows go in
        # in random id order (at the default 2 MB, each insert of a big chat reads pages back)
        self.db.execute("PRAGMA cache_size=-65536")
        self.db.create_function("selftune_epoch", 1, _epoch_of_iso, deterministic=True)

    def companion(self) -> Store:
        """A second connection to the same file, to be opened on the thread that uses it (the
        memory index follows an import while it loads): no migrations, and no index built
        behind a load's back."""
        other = Store.__new__(Store)
        other.path = self.path
        other.writing = self.writing
        other._connect()
        return other

    def _migrate(self) -> None:
        """Bring the store to the newest schema, one transaction per migration (a kill midway
        leaves the store at the last whole version); refuse a store from a newer selftune."""
        version = self.db.execute("PRAGMA user_version").fetchone()[0]
        if version == 0 and (version := self._legacy_version()):
            self.db.execute(f"PRAGMA user_version = {version}")
        if version > len(migrations.MIGRATIONS):
            raise SelftuneError(
                f"{self.path} was written by a newer selftune (store schema {version}; this "
                f"selftune {__version__} knows {len(migrations.MIGRATIONS)}). Upgrade selftune to open it "
                "(pip install -U selftune); nothing was changed"
            )
        for number, fn in enumerate(migrations.MIGRATIONS[version:], start=version + 1):
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
        while (
            version < len(migrations.MIGRATIONS) and migrations.MIGRATIONS[version].__name__ in done
        ):
            version += 1
        return version

    def _build_missing_indexes(self, table: str | None = None) -> None:
        """Build the deferrable indexes (of `table`, or of every table) that are missing."""
        present = {
            r[0] for r in self.db.execute("SELECT name FROM sqlite_master WHERE type = 'index'")
        }
        with self.writing, self.db:
            for owner, indexes in migrations.DEFERRABLE_INDEXES.items():
                if table is not None and owner != table:
                    continue  # another connection may be loading that table, its index dropped
                for name, statement in indexes.items():
                    if name not in present:
                        self._build_index(name, statement)

    def _build_index(self, name: str, statement: str) -> None:
        create = "CREATE " + statement.replace("INDEX ", "INDEX IF NOT EXISTS ", 1)
        try:
            self.db.execute(create)
        except sqlite3.IntegrityError:
            if name != "messages_by_id":
                raise
            # a load with its id index dropped keeps ids unique itself; only another process
            # writing the same new store at the same time can have doubled one: the first stays
            self._delete_rows(self.doubled_id_rows())
            self.db.execute(create)

    @contextlib.contextmanager
    def indexes_deferred(self, table: str) -> Iterator[bool]:
        """While the block loads rows into `table`, and only if it was empty, its secondary
        indexes are dropped; they are built again when the block ends (or when the store next
        opens, if the process dies). Yields whether they were dropped."""
        indexes = migrations.DEFERRABLE_INDEXES[table]
        empty = self.db.execute(f"SELECT NOT EXISTS (SELECT 1 FROM {table})").fetchone()[0]
        if not empty:
            yield False
            return
        with self.writing, self.db:
            for name in indexes:
                self.db.execute(f"DROP INDEX IF EXISTS {name}")
        if table == "messages":
            self.unindexed_load = UnindexedLoad()
        try:
            yield True
        finally:
            load, self.unindexed_load = self.unindexed_load, None
            self._build_missing_indexes(table)
            if load is not None and load.flags:
                self.correct_owner_flags(load.flags)

    def close(self) -> None:
        self.db.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextlib.contextmanager
    def transaction(self) -> Iterator[None]:
        """Commit what the block wrote when it ends; roll it back when it raises."""
        with self.writing, self.db:
            yield


def read_foreign(path: Path, query: str) -> list[sqlite3.Row]:
    """The rows of `query` on another program's SQLite file, opened read-only (never written)."""
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    db.row_factory = sqlite3.Row
    try:
        return db.execute(query).fetchall()
    finally:
        db.close()
