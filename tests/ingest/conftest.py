"""Shared helpers for the ingest tests: fixture paths, parsing a path, a fresh workspace."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from selftune.ingest import ParseContext, detect_parser, get_parser

FIXTURES = Path(__file__).parent.parent / "fixtures"


def parse(path: Path, fmt: str | None = None, me: tuple[str, ...] = ()):
    """(records, context) of one path, parsed by `fmt` or by the parser that detects it."""
    parser = get_parser(fmt) if fmt else detect_parser(path)
    assert parser is not None, f"no parser detects {path}"
    ctx = ParseContext(me=me)
    return list(parser.parse(path, ctx)), ctx


def wall(message) -> str:
    """A message's wall-clock time (export-local times do not depend on the test machine's zone)."""
    return message.timestamp.replace(tzinfo=None).isoformat(sep=" ")


@pytest.fixture
def fixtures() -> Path:
    return FIXTURES


@pytest.fixture
def chat_db(tmp_path: Path) -> Path:
    """macOS Messages chat.db built from the SQL fixture."""
    path = tmp_path / "chat.db"
    db = sqlite3.connect(path)
    db.executescript((FIXTURES / "imessage" / "chat.sql").read_text())
    db.commit()
    db.close()
    return path
