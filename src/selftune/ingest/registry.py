"""The parser registry: every export format is a parser registered by name, built-in or plugin.

A parser is any object with `name`, `description`, `detect(path) -> bool` and
`parse(path, ctx) -> Iterator[Message | Note]`. Built-in parsers register with `register_parser`,
exactly as a third-party plugin does from a module named in the `selftune.parsers` entry-point group.
A parser with `catch_all = True` (the built-in `markdown`, which claims every .txt/.md) is asked
last, after every plugin, so a plugin's format is never read as notes.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from pathlib import Path
from typing import Protocol

from selftune.errors import SelftuneError
from selftune.records import Message, Note

# detection asks them in this order; markdown (any .txt/.md) comes last as the catch-all
BUILTIN_PARSER_MODULES = (
    "selftune.ingest.whatsapp",
    "selftune.ingest.telegram",
    "selftune.ingest.meta",
    "selftune.ingest.discord",
    "selftune.ingest.slack",
    "selftune.ingest.imessage",
    "selftune.ingest.twitter",
    "selftune.ingest.mail",
    "selftune.ingest.signal",
    "selftune.ingest.roam",
    "selftune.ingest.markdown",
)


@dataclass
class Skipped:
    """Something a parser could not import, with where and why."""

    origin: str  # "file:line" or "file#json.path"
    reason: str


@dataclass
class ParseContext:
    """What a parser may use while parsing: the owner's names and a place to report skips."""

    me: tuple[str, ...] = ()
    skipped: list[Skipped] = field(default_factory=list)
    owners: dict[str, str] = field(default_factory=dict)  # conversation id -> who was taken as me

    def skip(self, origin: str, reason: str) -> None:
        self.skipped.append(Skipped(origin, reason))

    def is_me(self, *names: str | None) -> bool | None:
        """True when any of the given names/handles is one of the owner's, None if none is known."""
        if not self.me:
            return None
        wanted = {m.casefold() for m in self.me}
        return any(n is not None and n.strip().casefold() in wanted for n in names)


class Parser(Protocol):
    name: str
    description: str

    def detect(self, path: Path) -> bool: ...

    def parse(self, path: Path, ctx: ParseContext) -> Iterator[Message | Note]: ...


_PARSERS: dict[str, Parser] = {}
_loaded = False


def register_parser(parser: Parser) -> Parser:
    """Register a parser under its name (a later registration with the same name replaces it)."""
    for attr in ("name", "description", "detect", "parse"):
        if not hasattr(parser, attr):
            raise TypeError(f"parser {parser!r} has no {attr!r}")
    _PARSERS[parser.name] = parser
    return parser


def _load_plugins() -> None:
    global _loaded
    if _loaded:
        return
    _loaded = True
    for module in BUILTIN_PARSER_MODULES:
        importlib.import_module(module)
    for entry in entry_points(group="selftune.parsers"):
        entry.load()


def parsers() -> dict[str, Parser]:
    """All registered parsers by name, built-ins first."""
    _load_plugins()
    return dict(_PARSERS)


def get_parser(name: str) -> Parser:
    known = parsers()
    if name not in known:
        raise SelftuneError(f"unknown format {name!r}; known formats: {', '.join(sorted(known))}")
    return known[name]


def detect_parser(path: Path) -> Parser | None:
    """The first parser that recognises `path`, or None: built-ins, then plugins, in the order
    they registered, and the catch-all parsers last."""
    known = list(parsers().values())
    ordered = [p for p in known if not getattr(p, "catch_all", False)]
    ordered += [p for p in known if getattr(p, "catch_all", False)]
    for parser in ordered:
        try:
            if parser.detect(path):
                return parser
        except (OSError, UnicodeDecodeError, ValueError):
            continue
    return None
