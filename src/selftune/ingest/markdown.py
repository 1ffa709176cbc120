"""Notes as Markdown or plain text: a single file, a folder of notes, or an Obsidian vault.

Structure is kept as a block tree: headings own the blocks below them, list items own their
indented children. Front matter becomes metadata; `[[wikilinks]]` and `#tags` are collected.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, date, datetime
from itertools import islice
from pathlib import Path

import yaml

from selftune.errors import SelftuneError
from selftune.ingest.common import decode_text, read_capped
from selftune.ingest.registry import ParseContext, register_parser
from selftune.records import Block, Note

SUFFIXES = (".md", ".markdown", ".txt")
FRONT_MATTER = re.compile(r"\A---\s*\n(.*?)\n---\s*(?:\n|\Z)", re.S)
HEADING = re.compile(r"^(#{1,6})\s+(.*)$")
LIST_ITEM = re.compile(r"^(\s*)(?:[-*+]|\d+[.)])\s+(.*)$")
WIKILINK = re.compile(r"!?\[\[([^\]|#]+)(?:[#|][^\]]*)?\]\]")
TAG = re.compile(r"(?:(?<=\s)|^)#([\w/-]+)", re.M)


def _indent_width(spaces: str) -> int:
    return len(spaces.replace("\t", "    "))


def parse_blocks(body: str) -> list[Block]:
    """Markdown → block tree (headings and nested lists; paragraphs are leaf blocks)."""
    root = Block("")
    # stack of (level, block): headings use levels 1–6, list items 10 + indent, root 0
    stack: list[tuple[float, Block]] = [(0, root)]
    paragraph: list[str] = []
    in_code = False

    def attach(level: float, block: Block) -> None:
        while stack[-1][0] >= level:
            stack.pop()
        stack[-1][1].children.append(block)
        stack.append((level, block))

    def flush_paragraph() -> None:
        if paragraph:
            text = "\n".join(paragraph).strip()
            if text:
                # paragraphs belong to the innermost heading, not to a list item
                while stack[-1][0] >= 10:
                    stack.pop()
                stack[-1][1].children.append(Block(text))
            paragraph.clear()

    for line in body.splitlines():
        if line.strip().startswith("```"):
            in_code = not in_code
            paragraph.append(line)
            continue
        if in_code:
            paragraph.append(line)
            continue
        heading = HEADING.match(line)
        item = LIST_ITEM.match(line)
        if heading:
            flush_paragraph()
            level = len(heading.group(1))
            attach(level, Block(heading.group(2).strip(), heading=level))
        elif item:
            flush_paragraph()
            attach(10 + _indent_width(item.group(1)), Block(item.group(2).rstrip()))
        elif not line.strip():
            flush_paragraph()
        elif stack[-1][0] >= 10 and line.startswith((" ", "\t")):
            stack[-1][1].text += "\n" + line.strip()  # continuation of a list item
        else:
            paragraph.append(line)
    flush_paragraph()
    return root.children


def _as_datetime(value: object) -> datetime | None:
    if isinstance(value, datetime):
        return value if value.tzinfo else value.astimezone()
    if isinstance(value, date):
        return datetime(value.year, value.month, value.day).astimezone()
    if isinstance(value, str):
        try:
            return _as_datetime(datetime.fromisoformat(value))
        except ValueError:
            return None
    return None


def parse_note(
    path: Path, relative: str, ctx: ParseContext, source: str = "markdown"
) -> Note | None:
    """One note file as a Note; None (with the reason reported) when it is empty."""
    text = decode_text(read_capped(path), str(path), ctx).replace("\r\n", "\n")
    if not text.strip():
        ctx.skip(str(path), "an empty note; nothing to import")
        return None
    metadata: dict = {}
    match = FRONT_MATTER.match(text)
    if match:
        try:
            loaded = yaml.safe_load(match.group(1))
            metadata = loaded if isinstance(loaded, dict) else {}
        except yaml.YAMLError as exc:
            ctx.skip(f"{path}:1", f"front matter is not valid YAML ({exc}); kept as text")
        else:
            text = text[match.end() :]
    tags = metadata.get("tags") or []
    tags = [tags] if isinstance(tags, str) else [str(t) for t in tags]
    tags += [t for t in TAG.findall(text) if t not in tags and not t.isdigit()]
    links = list(dict.fromkeys(WIKILINK.findall(text)))
    stat = path.stat()
    return Note(
        source=source,
        title=str(metadata.get("title") or path.stem),
        path=relative,
        text=text.strip("\n"),
        blocks=parse_blocks(text),
        created=_as_datetime(metadata.get("created") or metadata.get("date")),
        modified=datetime.fromtimestamp(stat.st_mtime, UTC),
        tags=tags,
        links=links,
        metadata={k: v for k, v in metadata.items() if k not in ("tags",)},
        origin=str(path),
    )


class MarkdownParser:
    name = "markdown"
    description = "Markdown or plain-text notes: a file, a folder of notes, or an Obsidian vault"
    catch_all = True  # claims every .txt/.md: asked after the other parsers and the plugins

    def detect(self, path: Path) -> bool:
        if path.is_file():
            return path.suffix.lower() in SUFFIXES
        if (path / ".obsidian").is_dir():
            return True
        files = list(
            islice((p for p in path.rglob("*") if p.is_file() and not _hidden(p, path)), 500)
        )
        return bool(files) and all(p.suffix.lower() in (".md", ".markdown") for p in files)

    def parse(self, path: Path, ctx: ParseContext) -> Iterator[Note]:
        if path.is_file():
            root = _vault_root(path.parent)
            try:
                relative = path.resolve().relative_to(root).as_posix()
            except ValueError:
                relative = path.name
            note = parse_note(path, relative, ctx)
            if note is not None:
                yield note
            return
        root = _vault_root(path)
        for file in notes_in(path, ctx):
            try:
                relative = file.resolve().relative_to(root).as_posix()
            except ValueError:
                relative = file.relative_to(path).as_posix()
            try:
                note = parse_note(file, relative, ctx)
            except (SelftuneError, OSError, ValueError) as exc:  # one bad note, not the folder
                ctx.skip(str(file), f"not imported: {exc}")
                continue
            if note is not None:
                yield note


def notes_in(folder: Path, ctx: ParseContext) -> Iterator[Path]:
    """The note files under `folder`, in order. A symbolic link that leads outside the folder,
    is broken, or loops back is reported and passed over; the walk goes on."""
    root = folder.resolve()
    visited = {root}
    stack = [folder]
    found = []
    while stack:
        current = stack.pop()
        try:
            children = list(current.iterdir())
        except OSError as exc:
            ctx.skip(str(current), f"could not list the folder ({exc.strerror or exc})")
            continue
        for child in children:
            if child.name.startswith("."):
                continue
            if child.is_symlink():
                try:
                    target = child.resolve(strict=True)
                except (OSError, RuntimeError):
                    ctx.skip(str(child), "a broken or looping symbolic link; skipped")
                    continue
                if not target.is_relative_to(root):
                    ctx.skip(
                        str(child),
                        f"a symbolic link to {target}, outside the folder being imported; "
                        "skipped (give that path itself to import it)",
                    )
                    continue
                if target.is_dir() and target in visited:
                    ctx.skip(str(child), "a symbolic link back into this folder (a loop); skipped")
                    continue
            if child.is_dir():
                visited.add(child.resolve())
                stack.append(child)
            elif child.is_file() and child.suffix.lower() in SUFFIXES:
                found.append(child)
    return iter(sorted(found))


def _vault_root(folder: Path) -> Path:
    """The Obsidian vault `folder` is in (note paths are relative to it, so importing the vault
    or one of its folders gives a note the same id), or `folder` itself outside a vault."""
    folder = folder.resolve()
    for candidate in (folder, *folder.parents):
        if (candidate / ".obsidian").is_dir():
            return candidate
    return folder


def _hidden(file: Path, root: Path) -> bool:
    return any(part.startswith(".") for part in file.relative_to(root).parts)


parser = register_parser(MarkdownParser())
