"""The owner's private facts: matched in any case, whitespace and invisible characters, with
their distinctive values (`fact_values`) on their own too, and the start of one cut off at the end
of a text (`partial_at_end`) or still being written (`open_from`)."""

from __future__ import annotations

import re
from collections.abc import Iterable

from selftune.pii.values import INVISIBLE, SPACE, Span, find_pii, normalise

_INVISIBLE = re.compile(INVISIBLE)


def _fact_letters(fact: str) -> list[tuple[str, str]]:
    """A fact as (what may come before it, letter) pairs: invisible characters between the
    letters of a word, any run of whitespace (or invisible characters) between words."""
    words = " ".join(re.sub(INVISIBLE, "", fact).split()).lower().split(" ")
    return [
        ("" if not (w or j) else f"{INVISIBLE}*" if j else f"{SPACE}+", re.escape(c))
        for w, word in enumerate(words)
        for j, c in enumerate(word)
    ]


def _fact_pattern(fact: str) -> str:
    """A fact as a regex."""
    return "".join(gap + letter for gap, letter in _fact_letters(fact))


def _fact_start_pattern(fact: str) -> str:
    """Any start of a match of the fact, its first letter at least: letter (gap (rest)?)?."""
    letters = _fact_letters(fact)
    pattern = ""
    for k in range(len(letters) - 1, -1, -1):
        letter = letters[k][1]
        pattern = f"{letter}(?:{letters[k + 1][0]}(?:{pattern})?)?" if pattern else letter
    return pattern


VALUE_NUMBER = re.compile(r"\d(?:[ .-]?\d){2,}")  # three digits or more: a code, a PIN


def fact_values(fact: str) -> list[str]:
    """The distinctive values of a private fact, which must not be said on their own either:
    its numbers of three digits or more (a door code, a PIN, a house number with its street is
    an address) and the PII in it (a street address, a postcode, a phone number)."""
    spans = find_pii(fact)
    values = [s.value for s in spans]
    for m in VALUE_NUMBER.finditer(fact):
        if not any(s.start <= m.start() and m.end() <= s.end for s in spans):
            values.append(m.group(0))
    return [v for v in dict.fromkeys(values) if normalise(v) != normalise(fact)]


def _value_pattern(value: str) -> str:
    """A value as a regex that matches only as a whole (no digit or letter glued to it)."""
    edge = r"\d" if value[:1].isdigit() else r"\w"
    tail = r"\d" if value[-1:].isdigit() else r"\w"
    return f"(?<!{edge})(?:{_fact_pattern(value)})(?!{tail})"


def _value_start_pattern(value: str) -> str:
    """Any start of a match of a value (`_value_pattern` without its look-ahead, which the text
    to come decides)."""
    edge = r"\d" if value[:1].isdigit() else r"\w"
    return f"(?<!{edge})(?:{_fact_start_pattern(value)})"


class FactMatcher:
    """The private-facts list, matched in any case and with any whitespace between words, and
    each fact's distinctive values on their own (`values=False` leaves them out)."""

    def __init__(self, facts: Iterable[str] = (), values: bool = True):
        given = sorted({f for f in facts if f and f.strip()}, key=lambda f: -len(normalise(f)))
        self.facts = list(dict.fromkeys(normalise(f) for f in given))
        found = [v for f in given for v in fact_values(f)] if values else []
        self.values = [v for v in dict.fromkeys(found) if normalise(v) not in self.facts]
        # whole facts first: where a fact and one of its values start together, the fact wins
        by_length = sorted(self.values, key=len, reverse=True)
        parts = [f"(?:{_fact_pattern(f)})" for f in given]
        parts += [_value_pattern(v) for v in by_length]
        self.pattern = re.compile("|".join(parts), re.IGNORECASE) if self.facts else None
        starts = [f"(?:{_fact_start_pattern(f)})" for f in given]
        starts += [_value_start_pattern(v) for v in by_length]
        self.start_pattern = (
            re.compile(f"(?:{'|'.join(starts)})\\Z", re.IGNORECASE) if self.facts else None
        )
        self.longest = max((len(f) for f in [*self.facts, *self.values]), default=0)
        self._firsts = {f[0] for f in self.facts}

    def __bool__(self) -> bool:
        return self.pattern is not None

    def spans(self, text: str, start: int = 0) -> list[Span]:
        if self.pattern is None or len(text) <= start:
            return []
        found = self.pattern.finditer(text, start)
        return [Span("private_fact", *m.span(), m.group(0)) for m in found]

    def search(self, text: str) -> bool:
        return self.pattern is not None and self.pattern.search(text) is not None

    def sub(self, replacement: str, text: str) -> tuple[str, int]:
        if self.pattern is None:
            return text, 0
        return self.pattern.subn(replacement, text)

    def partial_at_end(self, text: str, start: int = 0) -> Span | None:
        """The longest start of a fact that `text` ends with, if it is at least half the fact
        (and 3 characters) and starts a word: what a `max_tokens` cut leaves of a fact."""
        for i in self._word_starts(text, start):
            piece = normalise(text[i:])
            if len(piece) < 3:
                break
            for fact in self.facts:
                if (
                    len(piece) < len(fact)
                    and fact.startswith(piece)
                    and 2 * len(piece) >= len(fact)
                ):
                    return Span("private_fact", i, len(text), text[i:])
        return None

    def open_from(self, text: str, start: int = 0) -> int:
        """The earliest index (from `start`) where the end of `text` could still be a fact in
        the making (a match not yet complete, or one `partial_at_end` would find once the text
        ends): what lies before it is decided. `len(text)` when nothing is open."""
        if self.start_pattern is None:
            return len(text)
        m = self.start_pattern.search(text, start)
        first = m.start() if m is not None else len(text)
        for i in self._word_starts(text, start):
            if i >= first:
                break
            if text[i].casefold()[:1] not in self._firsts and not _INVISIBLE.match(text[i]):
                continue  # no fact starts with this letter
            piece = normalise(text[i:])
            if any(fact.startswith(piece) for fact in self.facts):
                return i
        return first

    def _word_starts(self, text: str, start: int) -> Iterable[int]:
        """Each word start among the last characters (room for a fact with stretched
        whitespace), from `start` on, leftmost first."""
        if self.pattern is None:
            return
        offset = max(0, len(text) - (self.longest * 4 + 8))
        for i in range(max(offset, start), len(text)):
            if i > offset and (text[i - 1].isalnum() or not text[i].strip()):
                continue  # only from the start of a word
            yield i
