"""`messages.id` as a unique index of its own (migration m005): an old store keeps every message,
its id and its rowid; a first import drops the index and keeps ids unique itself; and the memory
index that follows a load on a second thread ends as the one built after it."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from selftune.ingest import importer
from selftune.ingest.importer import ingest_paths
from selftune.memory import index as memory_index
from selftune.memory import on_ingest
from selftune.records import Message
from selftune.store import MIGRATIONS, Store
from selftune.store import migrations as store_module

T0 = datetime(2024, 3, 1, 9, 0, tzinfo=UTC)


def message(i: int, author: str = "Ana", text: str | None = None, **kw) -> Message:
    return Message(
        "whatsapp", kw.pop("conversation", "c1"), "Chat", T0 + timedelta(minutes=i), author,
        text or f"m{i} about the garden", is_me=kw.pop("is_me", author == "Mags"), **kw,
    )  # fmt: skip


def rows(path: Path) -> list[tuple]:
    db = sqlite3.connect(path)
    try:
        return db.execute("SELECT rowid, * FROM messages ORDER BY rowid").fetchall()
    finally:
        db.close()


def test_an_old_store_keeps_every_message_its_id_and_rowid(tmp_path: Path, monkeypatch):
    path = tmp_path / "store.sqlite"
    old = MIGRATIONS.index(store_module.m005_message_id_index)
    monkeypatch.setattr(store_module, "MIGRATIONS", MIGRATIONS[:old])
    with Store(path) as store:  # the schema before m005: id is the primary key
        assert (
            "id TEXT PRIMARY KEY"
            in store.db.execute("SELECT sql FROM sqlite_master WHERE name = 'messages'").fetchone()[
                0
            ]
        )
        store.add_messages([message(i, "Mags" if i % 3 else "Ana") for i in range(50)])
        store.db.execute("DELETE FROM messages WHERE rowid IN (3, 17)")  # rowids with gaps
        store.db.commit()
        on_ingest(store)
    before = rows(path)
    monkeypatch.undo()
    with Store(path) as store:
        assert store.db.execute("PRAGMA user_version").fetchone()[0] == len(MIGRATIONS)
        assert rows(path) == before  # every row, its id and its rowid
        indexes = {r[1] for r in store.db.execute("PRAGMA index_list(messages)")}
        assert {"messages_by_id", "messages_by_conversation"} <= indexes
        assert not any(i.startswith("sqlite_autoindex") for i in indexes)
        # the search index still points at the right rows
        hit = store.db.execute(
            "SELECT m.text FROM memory_fts f JOIN messages m ON m.rowid = f.rowid"
            " WHERE memory_fts MATCH 'm44'"
        ).fetchall()
        assert [r[0] for r in hit] == ["m44 about the garden"]
        # and importing the same messages again adds nothing
        assert store.add_messages([message(i, "Mags" if i % 3 else "Ana") for i in range(50)]) == 2
        assert store.counts()["messages"] == 50
        with pytest.raises(sqlite3.IntegrityError):
            store.db.execute("INSERT INTO messages SELECT * FROM messages LIMIT 1")


def test_a_first_import_keeps_ids_unique_without_the_index(tmp_path: Path):
    with Store(tmp_path / "store.sqlite") as store:
        with store.indexes_deferred("messages") as dropped:
            assert dropped
            first = [message(i, is_me=None) for i in range(10)]
            assert store.add_messages(first) == 10
            # met again in the same batch and in a later one, with the owner flag found now
            again = [message(2, is_me=True), message(10), message(10), message(5, is_me=None)]
            assert store.add_messages(again) == 1
            assert store.counts()["messages"] == 11
        got = dict(store.db.execute("SELECT text, is_me FROM messages").fetchall())
        assert got["m2 about the garden"] == 1 and got["m5 about the garden"] is None
        assert store.add_messages(first) == 0  # the index is back: the upsert finds them


def test_ids_doubled_by_another_writer_during_a_first_import_keep_the_first(tmp_path: Path):
    path = tmp_path / "store.sqlite"
    with Store(path) as store:
        with store.indexes_deferred("messages"):
            store.add_messages([message(i) for i in range(5)])
            with store.companion() as other:
                other.db.execute("INSERT INTO messages SELECT * FROM messages WHERE rowid = 2")
                other.db.commit()
        assert [r[0] for r in store.db.execute("SELECT rowid FROM messages ORDER BY 1")] == [
            1,
            2,
            3,
            4,
            5,
        ]
        assert "messages_by_id" in {r[1] for r in store.db.execute("PRAGMA index_list(messages)")}


def chat_file(tmp_path: Path, lines: list[str]) -> Path:
    path = tmp_path / "WhatsApp Chat with Tobias.txt"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def indexed(path: Path) -> tuple[list, list]:
    db = sqlite3.connect(path)
    try:
        meta = db.execute("SELECT * FROM memory_meta ORDER BY rowid").fetchall()
        words = db.execute(
            "SELECT rowid FROM memory_fts WHERE memory_fts MATCH 'garden OR coffee' ORDER BY rowid"
        ).fetchall()
        return meta, words
    finally:
        db.close()


@pytest.mark.parametrize("follow", ["always", "never"])
def test_the_index_that_follows_a_load_is_the_one_built_after_it(tmp_path, monkeypatch, follow):
    lines = [
        f"03/04/2024, {9 + i // 60:02d}:{i % 60:02d} - {'Mags' if i % 2 else 'Tobias'}: "
        f"{'coffee' if i % 3 else 'garden'} number {i}"
        for i in range(600)
    ]
    path = chat_file(tmp_path, lines)
    monkeypatch.setattr(importer, "BATCH", 50)
    monkeypatch.setattr(memory_index, "FOLLOW", "never")
    (tmp_path / "after").mkdir()
    with Store(tmp_path / "after" / "store.sqlite") as store:
        ingest_paths(store, [path], ("Mags",))
    monkeypatch.setattr(memory_index, "FOLLOW", follow)
    (tmp_path / "follow").mkdir()
    with Store(tmp_path / "follow" / "store.sqlite") as store:
        ingest_paths(store, [path], ("Mags",))
        ingest_paths(store, [path], ("Mags",))  # again: nothing added, nothing indexed twice
        assert store.counts()["messages"] == 600
    assert indexed(tmp_path / "follow" / "store.sqlite") == indexed(
        tmp_path / "after" / "store.sqlite"
    )
    assert len(indexed(tmp_path / "follow" / "store.sqlite")[0]) == 600


def test_a_contact_excluded_before_who_writes_in_a_later_batch_leaves_nothing_indexed(
    tmp_path: Path,
):
    """The follower indexes batch by batch: what it indexed of a conversation before an
    excluded contact's first message there goes out again."""
    with Store(tmp_path / "store.sqlite") as store:
        store.set_person("Juno", excluded=True)
        store.add_messages([message(i, "Mags") for i in range(10)])
        assert memory_index.update_index(store) == 10
        store.add_messages([message(i, "Juno") for i in range(10, 12)])
        memory_index.update_index(store)
    assert indexed(tmp_path / "store.sqlite") == ([], [])
