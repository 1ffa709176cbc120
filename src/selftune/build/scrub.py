"""PII scrubbing for the dataset (the store keeps the original): typed, consistent placeholders.

Fast regexes find emails, phone numbers, IBANs (mod-97 checked), card numbers (Luhn checked),
street addresses and postcodes, and URLs that carry tokens or keys. Each distinct value gets one
numbered placeholder for the whole dataset (`<EMAIL_1>` is always the same address), so a
conversation still reads sensibly. Strings on the private-facts list are replaced by
`<PRIVATE>` wherever they appear, in any letter case, and `assert_clean` checks the written text
as a last guard. Counts per type go into the dataset card; values are never logged.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable
from urllib.parse import parse_qsl, urlsplit

from selftune.errors import SelftuneError

PII_TYPES = ("email", "url", "iban", "card", "phone", "address")

EMAIL = re.compile(r"(?<![\w.+-])[\w.+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,24}\b")
URL = re.compile(r"\b(?:https?://|www\.)[^\s<>\"'()\[\]]+", re.I)
IBAN = re.compile(r"\b[A-Z]{2}\d{2}(?:[ ]?[A-Z0-9]){11,30}\b")
CARD = re.compile(r"(?<![\d.,-])\d(?:[ -]?\d){12,18}(?![\d,-]|\.\d)")
PHONE = re.compile(r"(?<![\w+/:.-])(?:\+|00|\()?\d[\d ().-]{6,18}\d(?![\w/:-]|\.\d)")
DIGIT = re.compile(r"\d")
NUMBER_RUN = re.compile(r"\d(?:[\s().+./-]{0,3}\d){6}")
US_PHONE = re.compile(r"^\(?\d{3}\)?[ .-]?\d{3}[ .-]\d{4}$")
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
    if candidate.startswith(("+", "00", "(", "0")):
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


class Scrubber:
    """Replaces PII with typed placeholders, one number per distinct value across the dataset."""

    def __init__(self, private_facts: Iterable[str] = (), pii: bool = True):
        self.pii = pii
        facts = sorted({f.strip() for f in private_facts if f and f.strip()}, key=len, reverse=True)
        self.facts = facts
        self._facts_re = re.compile("|".join(re.escape(f) for f in facts), re.I) if facts else None
        self.placeholders: dict[tuple[str, str], str] = {}
        self.counts: Counter[str] = Counter()  # occurrences per type
        self.private_hits = 0

    def _placeholder(self, kind: str, value: str) -> str:
        key = (kind, value.casefold() if kind in ("email", "address") else value)
        if key not in self.placeholders:
            n = sum(1 for k in self.placeholders if k[0] == kind) + 1
            self.placeholders[key] = f"<{kind.upper()}_{n}>"
        self.counts[kind] += 1
        return self.placeholders[key]

    def scrub(self, text: str) -> str:
        """`text` with private facts and PII replaced (the same value, the same placeholder)."""
        if not text:
            return text
        if self._facts_re is not None and self._facts_re.search(text):
            text, hits = self._facts_re.subn("<PRIVATE>", text)
            self.private_hits += hits
        if not self.pii:
            return text
        if "@" in text:
            text = EMAIL.sub(lambda m: self._placeholder("email", m.group(0)), text)
        if "://" in text or "www." in text:
            text = URL.sub(self._url, text)
        if not DIGIT.search(text):
            return text
        if NUMBER_RUN.search(text):  # numbers of 7+ digits: account, card or phone numbers
            text = IBAN.sub(lambda m: self._checked(m, "iban", iban_valid), text)
            text = CARD.sub(lambda m: self._checked(m, "card", luhn_valid), text)
            text = PHONE.sub(self._phone, text)
        if STREET.search(text):
            text = ADDRESS.sub(self._address, text)
        return POSTCODE_UK.sub(lambda m: self._placeholder("address", m.group(0)), text)

    def _checked(self, match: re.Match, kind: str, valid) -> str:  # type: ignore[no-untyped-def]
        value = match.group(0)
        return self._placeholder(kind, re.sub(r"[ -]", "", value)) if valid(value) else value

    def _url(self, match: re.Match) -> str:
        url = match.group(0).rstrip(".,;:!?")
        tail = match.group(0)[len(url) :]
        return (self._placeholder("url", url) if url_has_secret(url) else url) + tail

    def _phone(self, match: re.Match) -> str:
        value = match.group(0).strip()
        if value.startswith("(") and ")" not in value:
            value = value[1:]
        if not phone_like(value):
            return match.group(0)
        key = ("+" if value.startswith("+") else "") + re.sub(r"\D", "", value)
        return match.group(0).replace(value, self._placeholder("phone", key))

    def _address(self, match: re.Match) -> str:
        words = match.group(1).split()
        if any(w.casefold().strip(".,") in NOT_NAME_WORDS for w in words):
            return match.group(0)
        return self._placeholder("address", " ".join(match.group(0).split()))

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

    def assert_clean(self, text: str, where: str) -> None:
        """Raise if a private fact survived into `text` (a bug, never expected)."""
        if self._facts_re is not None and self._facts_re.search(text):
            raise SelftuneError(
                f"a private fact would have been written to {where}; nothing was written. "
                "Please report this (without the fact)."
            )
