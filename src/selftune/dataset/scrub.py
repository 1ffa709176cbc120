"""PII scrubbing for the dataset (the store keeps the original): typed, consistent placeholders.

What counts as PII is `selftune.pii` (the same definition eval counts leaks with and the server's
guard redacts): emails, phone numbers, IBANs (mod-97 checked), card numbers (Luhn checked),
street addresses and postcodes, and URLs that carry tokens or keys. Each distinct value gets one
numbered placeholder for the whole dataset (`<EMAIL_1>` is always the same address), so a
conversation still reads sensibly. Strings on the private-facts list are replaced by
`<PRIVATE>` wherever they appear, in any letter case and whitespace (a fact split over two merged
messages included), and `assert_clean` checks the written text as a last guard. Counts per type
go into the dataset card; values are never logged.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable

from selftune.errors import SelftuneError
from selftune.pii import (  # noqa: F401  (re-exported: the checks people look for here)
    PII_TYPES,
    FactMatcher,
    find_pii,
    iban_valid,
    luhn_valid,
    phone_like,
    url_has_secret,
    value_key,
)


class Scrubber:
    """Replaces PII with typed placeholders, one number per distinct value across the dataset."""

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

    def assert_clean(self, text: str, where: str) -> None:
        """Raise if a private fact survived into `text` (a bug, never expected)."""
        if self.matcher.search(text):
            raise SelftuneError(
                f"a private fact would have been written to {where}; nothing was written. "
                "Please report this (without the fact)."
            )
