"""One owner of the store: no module outside `selftune/store/` runs SQL or opens a SQLite file."""

from __future__ import annotations

import ast
from pathlib import Path

import selftune

SRC = Path(selftune.__file__).parent
SQL_CALLS = {"execute", "executemany", "executescript"}


def sql_outside_store() -> list[str]:
    """`file:line call` for every SQL call or `sqlite3.connect` outside the store package."""
    found = []
    for path in sorted(SRC.rglob("*.py")):
        if path.relative_to(SRC).parts[0] == "store":
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if not isinstance(node, ast.Call) or not isinstance(node.func, ast.Attribute):
                continue
            name = node.func.attr
            owner = node.func.value
            connect = name == "connect" and isinstance(owner, ast.Name) and owner.id == "sqlite3"
            if name in SQL_CALLS or connect:
                found.append(f"{path.relative_to(SRC)}:{node.lineno} {name}")
    return found


def test_no_sql_outside_the_store_package():
    assert sql_outside_store() == []


def test_the_check_sees_sql(tmp_path: Path, monkeypatch):
    (tmp_path / "store").mkdir()
    (tmp_path / "store" / "ok.py").write_text("db.execute('SELECT 1')\n")
    (tmp_path / "cli.py").write_text("import sqlite3\nsqlite3.connect('x').executemany('', [])\n")
    monkeypatch.setattr(f"{__name__}.SRC", tmp_path)
    assert sql_outside_store() == ["cli.py:2 executemany", "cli.py:2 connect"]
