"""Where the end of a text could still be the start of a value (`open_from`), for a stream that
sends all the rest at once: one tail per kind, made of that kind's own pattern pieces."""

from __future__ import annotations

import re
from collections.abc import Iterable

from selftune.pii.values import (
    NOT_NAME_WORDS,
    PHONE_BEFORE,
    PLACEHOLDER_WORDS,
    US_PHONE_PARTS,
    find_pii,
)


def _starts_of(parts: Iterable[str]) -> str:
    """A regex for every non-empty start of `parts` in a row (each one character, or an optional
    one): `a(?:b(?:c)?)?` for a, b, c."""
    pattern = ""
    for part in reversed(list(parts)):
        pattern = f"{part}(?:{pattern})?" if pattern else part
    return pattern


# What the end of a text looks like while a value is still being written: for each kind, every
# start from which its pattern (look-aheads included) could still read past the end, and from
# which the value could still pass its check, written with that pattern's own pieces. Text before
# the earliest match can no longer become part of a value, whatever follows; text from there is
# held. `tests/serving/test_stream_guard.py` checks this against the patterns on random texts.
_US_REST = US_PHONE_PARTS[1:]  # a US number that starts with a digit
_SCHEMES = (
    _starts_of(["h", "t", "t", "p", "s?", ":", "/", "/"]) + "|" + _starts_of(["w", "w", "w", r"\."])
)
_IBAN_START = _starts_of(["[A-Z]", "[A-Z]", r"\d", r"\d(?:[ ]?[A-Z0-9]){0,30}[ ]?"])
_POSTCODE_START = _starts_of(
    ["[A-Z]", "[A-Z]?", r"\d", r"[A-Z\d]?", r"\s+", r"\d", "[A-Z]", "[A-Z]"]
)
_WORD = r"[A-Za-zÀ-ÿ'’.-]"  # a word of an address's street name
_NOT_A_NAME = r"\.*(?:" + "|".join(sorted(NOT_NAME_WORDS)) + r")\.*\s"  # a whole word (it ended)
OPEN_TAILS = (
    # an email: its local part, then its domain
    re.compile(r"(?<![\w.+-])[\w.+-]+(?:@[A-Za-z0-9.-]*)?\Z"),
    # a URL: the start of its scheme, or all of it up to the end
    re.compile(r"\b(?:" + _SCHEMES + r")\Z|\b(?:https?://|www\.)[^\s<>\"'()\[\]]*\Z", re.I),
    # an IBAN: its letters, check digits and groups
    re.compile(r"\b" + _IBAN_START + r"\Z"),
    # a card number: up to 19 digits in groups (and the "." or "," its look-ahead reads)
    re.compile(r"(?<![\d.,-])\d(?:[ -]?\d){0,18}[ -]?\Z|(?<![\d.,-])\d(?:[ -]?\d){12,18}[.,]\Z"),
    # a phone number that could still pass `phone_like`: one of PHONE_STARTS, or a digit that
    # starts a US_PHONE (a start of one, or all of one with more to come)
    re.compile(
        PHONE_BEFORE
        + f"(?=[+(0]|{_starts_of(_US_REST)}\\Z|{''.join(_US_REST)})"
        + r"(?:[+(]|00?)?(?:\d[\d ().-]{0,20})?\Z"
    ),
    # an address: a house number and up to four words, none of them one that is never a name
    re.compile(r"\b\d{1,5}[a-zA-Z]?,?(?:\s+(?!" + _NOT_A_NAME + ")" + _WORD + r"*){0,4}\Z", re.I),
    # a UK postcode
    re.compile(r"\b" + _POSTCODE_START + r"\Z"),
)
_PLACEHOLDER_STARTS = "|".join(_starts_of(w) for w in PLACEHOLDER_WORDS.split("|"))
# a placeholder: its brackets, the start of its word, or the word and what may follow it
OPEN_PLACEHOLDER = re.compile(
    r"[\[<{]{1,2}\s*(?:(?:"
    + _PLACEHOLDER_STARTS
    + r")?|(?:"
    + PLACEHOLDER_WORDS
    + r")(?:[_ -]?\w*)?\s*[\]>}]?)\Z",
    re.I,
)


def open_from(text: str, start: int = 0, pii: bool = True) -> int:
    """The earliest index (from `start`) at which a placeholder, or with `pii` a PII value, could
    still be in the making: what lies before it is decided whatever text follows. `len(text)`
    when nothing is open."""
    tails = (*OPEN_TAILS, OPEN_PLACEHOLDER) if pii else (OPEN_PLACEHOLDER,)
    found = (m.start() for tail in tails if (m := tail.search(text, start)) is not None)
    cut = min(found, default=len(text))
    if pii and cut < len(text):
        # a value that reaches into the open part starts it: the one that could still be in
        # the making may come to nothing ("4000000000006," then "5" is no card number) and
        # leave this one the value ("+4000000000006" is a phone number once it is not a card)
        values = find_pii(text, start, overlapping=True)
        while moved := [v.start for v in values if v.start < cut < v.end]:
            cut = min(moved)
    return cut
