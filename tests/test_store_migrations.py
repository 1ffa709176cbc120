"""Store migrations: one transaction each with PRAGMA user_version, so a kill midway leaves a
store that opens; a store from a newer selftune is refused; pre-user_version stores carry on."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
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
