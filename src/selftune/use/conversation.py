"""A conversation pasted as text (`selftune reply`): `Name: message` lines."""

from __future__ import annotations


def parse_conversation(text: str) -> list[tuple[str, str]]:
    """`Author: text` lines; a line without `Name:` continues the turn before it."""
    turns: list[tuple[str, str]] = []
    for raw in text.splitlines():
        line = raw.rstrip()
        if not line.strip():
            continue
        author, sep, said = line.partition(":")
        if sep and author.strip() and len(author) <= 40 and "http" not in author:
            turns.append((author.strip(), said.strip()))
        elif turns:
            turns[-1] = (turns[-1][0], turns[-1][1] + "\n" + line.strip())
        else:
            turns.append(("them", line.strip()))
    return turns
