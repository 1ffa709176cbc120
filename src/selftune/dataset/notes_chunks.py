"""Notes → completion chunks that keep their structure.

A note's text (Markdown as written, or a Roam outline with two spaces of indent per level) is read
as a tree: headings own what follows them up to the next heading of the same or a higher level, a
block owns the more indented list items below it, and a code fence stays whole. Chunks are cut
only where a node ends — never inside a block — and a node too long for one chunk is split
between its children, the next chunk repeating the node's first line (its heading or parent
bullet) as context. Every chunk starts with the page title. Links stay as written.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field

HEADING = re.compile(r"^(#{1,6})\s+\S")
LIST_ITEM = re.compile(r"^\s*(?:[-*+]|\d+[.)])\s+")
FENCE = re.compile(r"^\s*(```|~~~)")

Range = tuple[int, int]


@dataclass
class Node:
    start: int  # first line (a heading or a block's first line); -1 for the page itself
    end: int  # one past the last line
    heading: int = 0
    children: list[Node] = field(default_factory=list)

    @property
    def own_end(self) -> int:
        return self.children[0].start if self.children else self.end


def _indent(line: str) -> int:
    stripped = line.lstrip(" \t")
    return len(line[: len(line) - len(stripped)].replace("\t", "    "))


def _blocks(lines: list[str], a: int, b: int) -> list[Node]:
    """Blocks of lines[a:b]: each starts at a line no more indented than the first one."""
    nodes: list[Node] = []
    i = a
    while i < b and not lines[i].strip():
        i += 1
    while i < b:
        start, base = i, _indent(lines[i])
        fence = bool(FENCE.match(lines[i]))
        j = i + 1
        while j < b:
            line = lines[j]
            if fence:
                fence = not FENCE.match(line)
            elif FENCE.match(line) and _indent(line) > base:
                fence = True
            elif line.strip() and _indent(line) <= base:
                after_blank = not lines[j - 1].strip()
                if LIST_ITEM.match(line) or after_blank or LIST_ITEM.match(lines[start]):
                    break
            j += 1
        node = Node(start, j)
        child = next(
            (
                k
                for k in range(start + 1, j)
                if LIST_ITEM.match(lines[k]) and _indent(lines[k]) > base
            ),
            None,
        )
        if child is not None:
            node.children = _blocks(lines, child, j)
        nodes.append(node)
        i = j
        while i < b and not lines[i].strip():
            i += 1
    return nodes


def parse_outline(text: str) -> tuple[list[str], Node]:
    """(lines, the page as a tree of headings and blocks)."""
    lines = text.split("\n")
    root = Node(-1, len(lines))
    stack = [root]
    pos, in_fence = 0, False
    headings = []
    for i, line in enumerate(lines):
        if FENCE.match(line):
            in_fence = not in_fence
        elif not in_fence and HEADING.match(line):
            headings.append((i, len(HEADING.match(line).group(1))))  # type: ignore[union-attr]
    for i, level in [*headings, (len(lines), 0)]:
        stack[-1].children += _blocks(lines, pos, i)
        if i == len(lines):
            break
        while len(stack) > 1 and stack[-1].heading >= level:
            stack.pop()
        node = Node(i, i + 1, heading=level)
        stack[-1].children.append(node)
        stack.append(node)
        pos = i + 1
    _close(root)
    return lines, root


def _close(node: Node) -> int:
    """Set each heading's end to where its last child ends."""
    for child in node.children:
        _close(child)
    if node.heading and node.children:
        node.end = node.children[-1].end
    return node.end


class _Packer:
    def __init__(self, lines: list[str], line_tokens: list[int], budget: int):
        self.lines, self.line_tokens, self.budget = lines, line_tokens, budget
        self.cut_blocks = 0

    def tokens(self, r: Range) -> int:
        return sum(self.line_tokens[r[0] : r[1]]) + (r[1] - r[0])

    def pieces(self, node: Node) -> list[list[Range]]:
        """The node as chunks (each a list of line ranges), each within the budget if it can be."""
        whole = (max(node.start, 0), node.end)
        if node.start >= 0 and self.tokens(whole) <= self.budget:
            return [[whole]]
        if not node.children:
            return [[r] for r in self._split_leaf(whole)]
        own = (node.start, node.own_end) if node.start >= 0 else None
        crumb = (node.start, node.start + 1) if node.start >= 0 else None
        chunks: list[list[Range]] = []
        current: list[Range] = [own] if own else []
        size = self.tokens(own) if own else 0
        for child in node.children:
            for piece in self.pieces(child):
                cost = sum(self.tokens(r) for r in piece)
                if current and current != [crumb] and size + cost > self.budget:
                    chunks.append(current)
                    current = [crumb] if crumb else []
                    size = self.tokens(crumb) if crumb else 0
                current = current + piece
                size += cost
        if current and current != [crumb]:
            chunks.append(current)
        return chunks

    def _split_leaf(self, r: Range) -> list[Range]:
        """A single block longer than a chunk: cut between its lines (counted in the card)."""
        out, start, size = [], r[0], 0
        for i in range(r[0], r[1]):
            cost = self.line_tokens[i] + 1
            if i > start and size + cost > self.budget:
                out.append((start, i))
                start, size = i, 0
            size += cost
        out.append((start, r[1]))
        self.cut_blocks += len(out) - 1
        return out

    def render(self, ranges: list[Range]) -> str:
        merged: list[list[int]] = []
        for a, b in ranges:
            if merged and merged[-1][1] == a:
                merged[-1][1] = b
            else:
                merged.append([a, b])
        text = "\n".join("\n".join(self.lines[a:b]).strip("\n") for a, b in merged)
        return re.sub(r"\n{3,}", "\n\n", text).strip("\n")


def note_chunks(
    title: str, text: str, budget: int, count_many: Callable[[list[str]], list[int]]
) -> tuple[list[str], int]:
    """(chunks of the note, how many blocks had to be cut between lines). Every chunk starts
    with the title (the note's own first-level heading when it opens with one)."""
    body = text.strip("\n")
    if not body.strip():
        return [], 0
    lines, root = parse_outline(body)
    first = lines[0].strip()
    opens_with_title = first.startswith("# ")
    title_line = first if opens_with_title else f"# {title}"
    title_tokens = count_many([title_line])[0] + 2
    packer = _Packer(lines, count_many(lines), max(budget - title_tokens, 16))
    chunks = []
    for i, ranges in enumerate(packer.pieces(root)):
        chunk = packer.render(ranges)
        if not chunk.strip():
            continue
        if not (i == 0 and opens_with_title) and not chunk.startswith(title_line):
            chunk = f"{title_line}\n\n{chunk}"
        chunks.append(chunk)
    return chunks, packer.cut_blocks
