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
from selftune.pii import Scrubber as _PiiScrubber


class Scrubber(_PiiScrubber):
    """`selftune.pii.Scrubber` (one definition for datasets and memory blocks), with the
    build's last guard before anything is written."""

    def assert_clean(self, text: str, where: str) -> None:
        """Raise if a private fact survived into `text` (a bug, never expected)."""
        if self.matcher.search(text):
            raise SelftuneError(
                f"a private fact would have been written to {where}; nothing was written. "
                "Please report this (without the fact)."
            )
