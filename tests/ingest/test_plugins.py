"""A third-party parser registered through the `selftune.parsers` entry point is found, and it is
asked before the catch-all `markdown` parser, which claims every .txt and .md."""

from __future__ import annotations

import sys

import pytest

from selftune.ingest import ParseContext, detect_parser, registry

PLUGIN = """
from pathlib import Path
from selftune.ingest import register_parser
from selftune.records import Message, conversation_key
from selftune.ingest.common import from_epoch


class Journal:
    name = "journal-app"
    description = "an app's journal export (.txt starting with JOURNAL)"

    def detect(self, path):
        return path.suffix == ".txt" and path.read_text().startswith("JOURNAL")

    def parse(self, path, ctx):
        for i, line in enumerate(path.read_text().splitlines()[1:]):
            yield Message(source=self.name, conversation_id=conversation_key(self.name, "j"),
                          conversation_title="journal", timestamp=from_epoch(1e9 + i),
                          author="Mags", text=line, origin=f"{path}:{i + 2}")


register_parser(Journal())
"""


@pytest.fixture
def installed_plugin(tmp_path, monkeypatch):
    """A plugin installed the way pip installs one: a module and a dist-info with entry points."""
    (tmp_path / "journal_plugin.py").write_text(PLUGIN)
    dist = tmp_path / "journal_plugin-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: journal-plugin\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text("[selftune.parsers]\njournal = journal_plugin\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    saved = dict(registry._PARSERS)
    monkeypatch.setattr(registry, "_loaded", False)
    yield
    registry._PARSERS.clear()
    registry._PARSERS.update(saved)
    sys.modules.pop("journal_plugin", None)


def test_a_plugin_from_an_entry_point_is_asked_before_the_markdown_catch_all(
    installed_plugin, tmp_path
):
    export = tmp_path / "export.txt"
    export.write_text("JOURNAL\nfirst entry\nsecond entry\n")
    parser = detect_parser(export)
    assert parser is not None and parser.name == "journal-app"
    assert [m.text for m in parser.parse(export, ParseContext())] == ["first entry", "second entry"]
    # a plain note is still a note
    note = tmp_path / "note.txt"
    note.write_text("just a note\n")
    assert detect_parser(note).name == "markdown"
