"""Roam Research JSON exports ("Export All" → JSON): a list of pages, each a tree of blocks.

The block tree is kept as it is (depth, order, uids, headings). Block references `((uid))` and
`{{embed: ((uid))}}` are replaced by the text of the block they point to; `{{[[TODO]]}}` and
`{{[[DONE]]}}` become `TODO`/`DONE`; `[[page]]`, `#tag` and `#[[long tag]]` are kept in the text
and collected as links and tags. A note's text is its outline, two spaces of indent per level.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from selftune.ingest.common import from_epoch, load_json, read_head
from selftune.ingest.registry import ParseContext, register_parser
from selftune.records import Block, Note

BLOCK_REF = re.compile(r"\(\(([\w-]{6,})\)\)")
EMBED = re.compile(r"\{\{\[?\[?embed\]?\]?:\s*\(\(([\w-]{6,})\)\)\s*\}\}")
TODO = re.compile(r"\{\{\[\[(TODO|DONE)\]\]\}\}\s?")
PAGE_LINK = re.compile(r"\[\[([^\[\]]+)\]\]")
TAG = re.compile(r"(?:(?<=\s)|^)#(?:\[\[([^\[\]]+)\]\]|([\w/-]+))")


def _index(blocks: list[Any], into: dict[str, str]) -> None:
    for block in blocks:
        if isinstance(block, dict):
            if block.get("uid"):
                into[block["uid"]] = str(block.get("string", ""))
            _index(block.get("children") or [], into)


def resolve(text: str, refs: dict[str, str], depth: int = 0) -> str:
    """Block refs and embeds replaced by their text (refs inside refs too, a few levels deep)."""
    if depth > 4 or "((" not in text:
        return TODO.sub(lambda m: f"{m.group(1)} ", text)

    def one(match: re.Match) -> str:
        uid = match.group(1)
        return resolve(refs[uid], refs, depth + 1) if uid in refs else match.group(0)

    text = EMBED.sub(one, text)
    text = BLOCK_REF.sub(one, text)
    return TODO.sub(lambda m: f"{m.group(1)} ", text)


def _blocks(raw: list[Any], refs: dict[str, str]) -> list[Block]:
    out = []
    for block in raw:
        if not isinstance(block, dict):
            continue
        out.append(
            Block(
                text=resolve(str(block.get("string", "")), refs),
                children=_blocks(block.get("children") or [], refs),
                uid=block.get("uid"),
                heading=int(block.get("heading") or 0),
            )
        )
    return out


def outline(blocks: list[Block], depth: int = 0) -> list[str]:
    lines = []
    for block in blocks:
        text = block.text.replace("\n", "\n" + "  " * depth + "  ")
        lines.append(f"{'  ' * depth}- {text}")
        lines += outline(block.children, depth + 1)
    return lines


class RoamParser:
    name = "roam"
    description = "Roam Research JSON export (pages with block trees)"

    def detect(self, path: Path) -> bool:
        if not path.is_file() or path.suffix.lower() != ".json":
            return False
        head = read_head(path, 4096).lstrip()
        return (
            head.startswith("[")
            and '"title"' in head
            and ('"string"' in head or '"children"' in head)
        )

    def parse(self, path: Path, ctx: ParseContext) -> Iterator[Note]:
        pages = load_json(path, ctx)
        if not isinstance(pages, list):
            ctx.skip(str(path), "expected a list of pages")
            return
        refs: dict[str, str] = {}
        for page in pages:
            if isinstance(page, dict):
                _index(page.get("children") or [], refs)
        for i, page in enumerate(pages):
            origin = f"{path}#[{i}]"
            if not isinstance(page, dict) or not page.get("title"):
                ctx.skip(origin, "a page without a title")
                continue
            blocks = _blocks(page.get("children") or [], refs)
            text = "\n".join(outline(blocks))
            links = list(dict.fromkeys(PAGE_LINK.findall(text)))
            tags = list(dict.fromkeys(a or b for a, b in TAG.findall(text)))
            times = [page.get("create-time"), page.get("edit-time")]
            created, modified = (
                from_epoch(t / 1000) if isinstance(t, int | float) else None for t in times
            )
            yield Note(
                source=self.name,
                title=str(page["title"]),
                path=str(page["title"]),
                text=text,
                blocks=blocks,
                created=created,
                modified=modified,
                tags=tags,
                links=links,
                metadata={"uid": page["uid"]} if page.get("uid") else {},
                origin=origin,
            )


parser = register_parser(RoamParser())
