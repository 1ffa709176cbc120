"""The one PII definition: what counts as personal data, for scrubbing (build), leak counts (eval)
and the output guard (serve), so "what build removed", "what eval counts" and "what serve redacts"
are the same thing.

- `find_pii(text)`: emails, URLs that carry a credential, IBANs (mod-97 checked), card numbers
  (Luhn checked), phone numbers, street addresses and UK postcodes, as non-overlapping spans with
  a normalised key (`value_key`) so the same value written two ways is one value. A candidate
  that fails its check hides nothing inside it ("1. 0207 946 0958" holds a phone number).
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
  start of a value (`OPEN_TAILS`, made of each pattern's own pieces: digits that could still
  become a card or a phone number that passes `phone_like`, letters that could become an email,
  the first words of a fact), so a stream holds back only that and sends the rest at once.

In `values.py` the kinds' patterns, checks and `find_pii`; in `facts.py` the `FactMatcher`; in
`tails.py` `open_from`; here the `Scrubber`. Import everything from `selftune.pii`.

Every search takes a `start`: the spans at or after it, read with the text before it (lookbehinds,
word boundaries), equal those of the whole text when no span crosses `start`.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable

from selftune.pii.facts import FactMatcher, fact_values
from selftune.pii.tails import OPEN_PLACEHOLDER, OPEN_TAILS, open_from
from selftune.pii.values import (
    PII_TYPES,
    PLACEHOLDER,
    Span,
    find_pii,
    iban_valid,
    luhn_valid,
    normalise,
    phone_like,
    url_has_secret,
    value_key,
)

__all__ = [
    "OPEN_PLACEHOLDER", "OPEN_TAILS", "PII_TYPES", "PLACEHOLDER", "FactMatcher", "Scrubber",
    "Span", "fact_values", "find_pii", "iban_valid", "luhn_valid", "normalise", "open_from",
    "phone_like", "url_has_secret", "value_key",
]  # fmt: skip


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
