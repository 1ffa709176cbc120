"""The one PII definition: what counts as personal data, for scrubbing (build), leak counts (eval)
and the output guard (serve), so "what build removed", "what eval counts" and "what serve redacts"
are the same thing.

- `find_pii(text)`: emails, URLs that carry a credential, IBANs (mod-97 checked), card numbers
  (Luhn checked), phone numbers, street addresses and UK postcodes, as non-overlapping spans with
  a normalised key (`value_key`) so the same value written two ways is one value.
- `FactMatcher`: the owner's private-facts list, matched in any letter case and with any run of
  whitespace (spaces, no-break spaces, line breaks — so a fact split over two merged messages is
  still one fact) and invisible characters (zero-width, soft hyphen) between words and letters;
  a fact's distinctive values (`fact_values`: its numbers of three digits or more, its street
  address or postcode) match on their own too ("Code: 4471" for "the door code is 4471").
  `partial_at_end` finds the start of a fact cut off at the end of a text ("my locker code is 73").
- `Scrubber`: PII replaced by typed, numbered placeholders (`<EMAIL_1>`, one number per value)
  and private facts by `<PRIVATE>`: what the build scrubs datasets with and the memory scrubs
  each memory block with (author names included), at training and at use alike.
- `PLACEHOLDER`: the dataset's own placeholders (`<EMAIL_1>`, `<PRIVATE>`) and look-alikes.
- `open_from(text)` and `FactMatcher.open_from(text)`: where the end of a text could still be the
  start of a value (digits that could become a phone number, a word that could become an email, the
  first words of a fact), so a stream holds back only that and sends the rest at once.

Every search takes a `start`: the spans at or after it, read with the text before it (lookbehinds,
word boundaries), equal those of the whole text when no span crosses `start`.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from urllib.parse import parse_qsl, urlsplit

PII_TYPES = ("email", "url", "iban", "card", "phone", "address")

EMAIL = re.compile(r"(?<![\w.+-])[\w.+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,24}\b")
URL = re.compile(r"\b(?:https?://|www\.)[^\s<>\"'()\[\]]+", re.I)
IBAN = re.compile(r"\b[A-Z]{2}\d{2}(?:[ ]?[A-Z0-9]){11,30}\b")
CARD = re.compile(r"(?<![\d.,-])\d(?:[ -]?\d){12,18}(?![\d-]|[.,]\d)")
PHONE_BEFORE = r"(?<![\w+/:.-])"
PHONE = re.compile(PHONE_BEFORE + r"(?:\+|00|\()?\d[\d ().-]{6,18}\d(?![\w/:-]|\.\d)")
PHONE_STARTS = ("+", "00", "(", "0")  # how a phone number may start; other numbers are US_PHONE
DIGIT = re.compile(r"\d")
IBAN_HEAD = re.compile(r"[A-Z]{2}\d{2}")  # how every IBAN starts
# one character each, so that `_starts_of` can make "any start of it" from the same pieces
US_PHONE_PARTS = (r"\(?", *[r"\d"] * 3, r"\)?", r"[ .-]?", *[r"\d"] * 3, r"[ .-]", *[r"\d"] * 4)
US_PHONE = re.compile("^" + "".join(US_PHONE_PARTS) + "$")
DATE_LIKE = re.compile(r"^\d{1,4}([./-])\d{1,2}\1\d{1,4}$")
STREET_WORDS = (
    "street|st|road|rd|avenue|ave|lane|ln|drive|boulevard|blvd|terrace|crescent|mews|"
    "strasse|straße|gasse|rue|calle"
)
_COMMON_WORDS = (
    "a an the on in at to of my your our their his her and or for by with from is are was it "
    "its this that so we can i you he she they be just then about up down out over per more "
    "less min mins minutes hours days weeks times people all am pm have got get go no not one"
)
NOT_NAME_WORDS = frozenset(_COMMON_WORDS.split())
STREET = re.compile(r"\b(?:" + STREET_WORDS + r")\b", re.I)
ADDRESS = re.compile(
    r"\b\d{1,5}[a-zA-Z]?,?\s+((?:[A-Za-zÀ-ÿ'’.-]+\s+){1,3})(?:" + STREET_WORDS + r")\b\.?",
    re.I,
)
POSTCODE_UK = re.compile(r"\b[A-Z]{1,2}\d[A-Z\d]?\s+\d[A-Z]{2}\b")
SECRET_PARAMS = re.compile(
    r"(token|key|secret|sig|signature|auth|session|sid|password|passwd|pwd|code|access|"
    r"credential|otp|invite|ticket|hash)",
    re.I,
)
RANDOM_SEGMENT = re.compile(r"(?=[A-Za-z0-9_-]*\d)(?=[A-Za-z0-9_-]*[A-Za-z])[A-Za-z0-9_-]{24,}")
PLACEHOLDER_WORDS = "EMAIL|PHONE|IBAN|CARD|ADDRESS|URL|NAME|PERSON|PII|SECRET|PRIVATE|REDACTED"
PLACEHOLDER = re.compile(
    r"[\[<{]{1,2}\s*(?:" + PLACEHOLDER_WORDS + r")(?:[_ -]?\w+)?\s*[\]>}]{1,2}", re.I
)
# what may sit between the words and letters of a fact without making it another fact
SPACE = r"[\s\u00a0\u1680\u2000-\u200d\u2028\u2029\u202f\u205f\u2060\u3000\ufeff\u00ad]"
INVISIBLE = r"[\u200b-\u200d\u2060\ufeff\u00ad]"
_INVISIBLE = re.compile(INVISIBLE)
LONGEST_SPAN = 64  # non-space characters: no bounded PII kind is longer (IBAN 34, phone 20)


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


@dataclass(frozen=True)
class Span:
    kind: str  # one of PII_TYPES, or "private_fact" / "placeholder"
    start: int
    end: int
    value: str

    @property
    def key(self) -> str:
        return value_key(self.kind, self.value)


def iban_valid(candidate: str) -> bool:
    """The ISO 13616 mod-97 check."""
    s = candidate.replace(" ", "")
    if not 15 <= len(s) <= 34:
        return False
    digits = "".join(str(int(c, 36)) for c in s[4:] + s[:4])
    return int(digits) % 97 == 1


def luhn_valid(candidate: str) -> bool:
    digits = [int(c) for c in candidate if c.isdigit()]
    if not 13 <= len(digits) <= 19 or len(set(digits)) == 1:
        return False
    total = 0
    for i, d in enumerate(reversed(digits)):
        if i % 2:
            d *= 2
            d -= 9 if d > 9 else 0
        total += d
    return total % 10 == 0


def phone_like(candidate: str) -> bool:
    digits = sum(c.isdigit() for c in candidate)
    if not 9 <= digits <= 15 or DATE_LIKE.match(candidate) or candidate.count(".") > 2:
        return False
    if candidate.startswith(PHONE_STARTS):
        return True
    return bool(US_PHONE.match(candidate))


def url_has_secret(url: str) -> bool:
    """True for URLs that carry a credential: a token-like query key, user:password@, or a long
    random path segment (share links, reset links, signed URLs)."""
    try:
        parts = urlsplit(url if "://" in url else "http://" + url)
    except ValueError:
        return True
    if parts.password or (parts.username and "@" in parts.netloc):
        return True
    if any(SECRET_PARAMS.search(k) for k, _ in parse_qsl(parts.query, keep_blank_values=True)):
        return True
    return bool(RANDOM_SEGMENT.search(parts.path) or RANDOM_SEGMENT.search(parts.fragment))


def value_key(kind: str, value: str) -> str:
    """One key per value however it is written (spaces in a card, case in an email)."""
    if kind in ("iban", "card"):
        return re.sub(r"[\s-]", "", value).upper()
    if kind == "phone":
        digits = re.sub(r"\D", "", value)
        return (
            "+" + digits[2:] if value.startswith("00") else ("+" if "+" in value else "") + digits
        )
    if kind in ("email", "address"):
        return " ".join(value.split()).casefold()
    if kind == "private_fact":
        return normalise(value)
    return value


def normalise(text: str) -> str:
    """Case folded, invisible characters dropped, every whitespace run one space."""
    return " ".join(re.sub(INVISIBLE, "", text).split()).casefold()


def find_pii(text: str, start: int = 0, overlapping: bool = False) -> list[Span]:
    """PII-shaped values in `text` (from `start`), in order, none overlapping another (an
    earlier kind wins; with `overlapping`, every kind's values, also those another hides)."""
    if len(text) <= start:
        return []
    found: list[Span] = []

    def add(kind: str, start: int, end: int) -> None:
        if overlapping or not any(s.start < end and start < s.end for s in found):
            found.append(Span(kind, start, end, text[start:end]))

    if "@" in text:
        for m in EMAIL.finditer(text, start):
            add("email", *m.span())
    if "://" in text or "www." in text.lower():
        for m in URL.finditer(text, start):
            url = m.group(0).rstrip(".,;:!?")
            if url_has_secret(url):
                add("url", m.start(), m.start() + len(url))
    if DIGIT.search(text):
        # each kind is looked for only where the text has as many digits as its shortest valid
        # value: a test of the part read, so a value is found whatever else the text holds
        digits = len(DIGIT.findall(text, start))
        if IBAN_HEAD.search(text, start):
            for a, b in _checked(IBAN, text, start, _valid(iban_valid)):
                add("iban", a, b)
        if digits >= 13:
            for a, b in _checked(CARD, text, start, _valid(luhn_valid)):
                add("card", a, b)
        if digits >= 9:
            for a, b in _checked(PHONE, text, start, _phone):
                add("phone", a, b)
        if STREET.search(text, start):
            for m in ADDRESS.finditer(text, start):
                words = m.group(1).split()
                if not any(w.casefold().strip(".,") in NOT_NAME_WORDS for w in words):
                    add("address", *m.span())
        for m in POSTCODE_UK.finditer(text, start):
            add("address", *m.span())
    return sorted(found, key=lambda s: s.start)


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


Checked = tuple[int, int] | None  # a match's span once checked, None when it fails


def _checked(
    pattern: re.Pattern[str], text: str, start: int, check: Callable[[re.Match[str]], Checked]
) -> Iterable[tuple[int, int]]:
    """The spans of `pattern`'s matches from `start` that pass `check` (which may narrow them).
    A match that fails does not hide one starting inside it ("1. 0207 946 0958" is a list number
    and a phone number): the search goes on from the match's next character, so whether a value
    is found depends only on the value and the character before it, never on where a search
    began (which lets a stream search only what it has not sent)."""
    at = start
    while (m := pattern.search(text, at)) is not None:
        span = check(m)
        if span is None:
            at = m.start() + 1
        else:
            yield span
            at = m.end()


def _valid(test: Callable[[str], bool]) -> Callable[[re.Match[str]], Checked]:
    return lambda m: m.span() if test(m.group(0)) else None


def _phone(match: re.Match[str]) -> Checked:
    raw = match.group(0)
    value = raw.strip()
    start = match.start() + raw.index(value)
    if value.startswith("(") and ")" not in value:
        value, start = value[1:], start + 1
    return (start, start + len(value)) if phone_like(value) else None


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


class Scrubber:
    """Replaces PII with typed placeholders, one number per distinct value across what this
    scrubber sees (a whole dataset, or one memory block), and private facts with `<PRIVATE>`."""

    def __init__(self, private_facts: Iterable[str] = (), pii: bool = True):
        self.pii = pii
        self.matcher = FactMatcher(private_facts)
        self.facts = self.matcher.facts
        self.placeholders: dict[tuple[str, str], str] = {}
        self.counts: Counter[str] = Counter()  # occurrences per type
        self.private_hits = 0

    def _placeholder(self, kind: str, value: str) -> str:
        key = (kind, value_key(kind, value))
        if key not in self.placeholders:
            n = sum(1 for k in self.placeholders if k[0] == kind) + 1
            self.placeholders[key] = f"<{kind.upper()}_{n}>"
        self.counts[kind] += 1
        return self.placeholders[key]

    def scrub(self, text: str) -> str:
        """`text` with private facts and PII replaced (the same value, the same placeholder)."""
        if not text:
            return text
        if self.matcher:
            text, hits = self.matcher.sub("<PRIVATE>", text)
            self.private_hits += hits
        if not self.pii:
            return text
        spans = find_pii(text)
        if not spans:
            return text
        out, at = [], 0
        for span in spans:
            out += [text[at : span.start], self._placeholder(span.kind, span.value)]
            at = span.end
        out.append(text[at:])
        return "".join(out)

    def report(self) -> dict[str, dict[str, int]]:
        """Occurrences and distinct values per type, for the card (no values)."""
        distinct = Counter(kind for kind, _ in self.placeholders)
        out = {
            kind: {"occurrences": self.counts[kind], "values": distinct[kind]}
            for kind in PII_TYPES
            if self.counts[kind]
        }
        if self.facts:
            out["private_fact"] = {"occurrences": self.private_hits, "values": len(self.facts)}
        return out
