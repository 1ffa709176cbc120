"""Store migrations: one transaction each with PRAGMA user_version, so a kill midway leaves a
store that opens; a store from a newer selftune is refused; pre-user_version stores carry on."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from datetime import UTC
from pathlib import Path

import pytest

from selftune.errors import SelftuneError
from selftune.store import MIGRATIONS, Store
from selftune.store import migrations as store_module

KILLED_MIDWAY = """
import os, sys
from selftune import store

@store.migration
def m999_killed(db):
    db.executescript("CREATE TABLE half_done (x TEXT); CREATE INDEX half_by_x ON half_done (x);")
    os._exit(9)  # killed after the first statements, before the migration finished

store.Store(sys.argv[1])
"""


def test_a_kill_during_a_migration_leaves_a_store_that_opens(tmp_path: Path):
    path = tmp_path / "store.sqlite"
    Store(path).close()
    done = subprocess.run([sys.executable, "-c", KILLED_MIDWAY, str(path)], check=False)
    assert done.returncode == 9
    db = sqlite3.connect(path)
    assert db.execute("PRAGMA user_version").fetchone()[0] == len(MIGRATIONS)
    tables = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    assert "half_done" not in tables  # rolled back with the rest of the migration
    db.close()
    with Store(path) as s:
        assert s.counts()["messages"] == 0


def test_a_failing_migration_changes_nothing_and_can_run_again(tmp_path: Path, monkeypatch):
    path = tmp_path / "store.sqlite"
    Store(path).close()
    calls = []

    def m999_flaky(db):  # type: ignore[no-untyped-def]
        db.executescript("CREATE TABLE extra (x TEXT); INSERT INTO extra VALUES ('a;b');")
        calls.append(1)
        if len(calls) == 1:
            raise RuntimeError("disk full")

    monkeypatch.setattr(store_module, "MIGRATIONS", [*MIGRATIONS, m999_flaky])
    with pytest.raises(RuntimeError):
        Store(path)
    with Store(path) as s:  # runs again from the start, "table extra already exists" cannot happen
        assert s.db.execute("SELECT x FROM extra").fetchall()[0][0] == "a;b"
        assert s.db.execute("PRAGMA user_version").fetchone()[0] == len(MIGRATIONS) + 1


def test_a_store_from_a_newer_selftune_is_refused(tmp_path: Path):
    path = tmp_path / "store.sqlite"
    Store(path).close()
    db = sqlite3.connect(path)
    db.execute(f"PRAGMA user_version = {len(MIGRATIONS) + 3}")
    db.close()
    with pytest.raises(SelftuneError, match="newer selftune") as err:
        Store(path)
    assert str(path) in str(err.value) and "Upgrade" in str(err.value)


def test_a_store_from_before_user_version_is_not_migrated_twice(tmp_path: Path):
    path = tmp_path / "store.sqlite"
    Store(path).close()
    db = sqlite3.connect(path)
    db.execute("PRAGMA user_version = 0")  # as the named-migrations runner left stores
    db.commit()
    db.close()
    with Store(path) as s:
        assert s.db.execute("PRAGMA user_version").fetchone()[0] == len(MIGRATIONS)


KILLED_MID_LOAD = """
import os, sys
from selftune.store import Store

with Store(sys.argv[1]) as s, s.indexes_deferred("messages"):
    os._exit(9)  # killed while a first import loads, its indexes dropped
"""


def _indexes(path: Path) -> set[str]:
    db = sqlite3.connect(path)
    try:
        return {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type = 'index'")}
    finally:
        db.close()


def test_a_first_import_builds_its_indexes_after_and_a_kill_midway_leaves_none_missing(
    tmp_path: Path,
):
    path = tmp_path / "store.sqlite"
    Store(path).close()
    deferred = set(store_module.DEFERRABLE_INDEXES["messages"])
    assert deferred <= _indexes(path)
    done = subprocess.run([sys.executable, "-c", KILLED_MID_LOAD, str(path)], check=False)
    assert done.returncode == 9
    assert not deferred & _indexes(path)  # the kill left them dropped ...
    with Store(path) as s:  # ... and the next open builds them again
        assert deferred <= _indexes(path)
        with s.indexes_deferred("messages") as dropped:
            assert dropped and not deferred & _indexes(path)
        assert deferred <= _indexes(path)


def test_indexes_are_kept_while_loading_into_a_table_that_holds_rows(tmp_path: Path):
    from datetime import datetime

    from selftune.records import Message

    path = tmp_path / "store.sqlite"
    with Store(path) as s:
        when = datetime(2024, 3, 1, 9, 0, tzinfo=UTC)
        s.add_messages([Message("whatsapp", "c1", "Chat", when, "Ana", "hi")])
        with s.indexes_deferred("messages") as dropped:
            assert not dropped
            assert set(store_module.DEFERRABLE_INDEXES["messages"]) <= _indexes(path)
