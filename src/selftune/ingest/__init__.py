"""Ingest: read exports into canonical records (see `registry` for formats, `importer` for the walk)."""

from selftune.ingest.registry import (
    ParseContext,
    Parser,
    Skipped,
    detect_parser,
    get_parser,
    parsers,
    register_parser,
)

__all__ = [
    "ParseContext",
    "Parser",
    "Skipped",
    "detect_parser",
    "get_parser",
    "parsers",
    "register_parser",
]
