"""PII values: the patterns and checks of every kind, `find_pii`, `value_key`, `normalise`."""

from __future__ import annotations

import re
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
LONGEST_SPAN = 64  # non-space characters: no bounded PII kind is longer (IBAN 34, phone 20)


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
