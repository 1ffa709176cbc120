"""Guards on what goes in and out of the twin.

Out: private facts (BuildConfig.private_facts), the dataset's scrubbed placeholders and PII-shaped
strings (emails, phone numbers, IBANs, card numbers) are replaced by `[redacted]` before any text
leaves the server, streamed text included. In: text that looks like a prompt injection is flagged,
and refused in unattended use (a note app or a bot calling the API with nobody reading first).
Note-app output options tag generated text and make `[[links]]` and `#tags` inert.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable

REDACTED = "[redacted]"

PII_PATTERNS = {
    "email": r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+",
    "iban": r"\b[A-Z]{2}\d{2}(?: ?[A-Z0-9]{4}){3,7}(?: ?[A-Z0-9]{1,3})?\b",
    "card": r"\b\d{4}(?:[ -]?\d{4}){3}\b",
    "phone": r"(?<![\w+])\+?\d[\d ()./-]{7,}\d\b",
    "placeholder": r"[\[<{]{1,2}\s*(?:EMAIL|PHONE|IBAN|CARD|ADDRESS|URL|NAME|PERSON|PII|SECRET|"
    r"PRIVATE|REDACTED)(?:[_ -]?\w+)?\s*[\]>}]{1,2}",
}

INJECTION_PATTERNS = [
    r"\bignore (?:all |any )?(?:the )?(?:previous|prior|above|earlier|preceding) (?:instructions|prompts?|messages?|rules)",
    r"\bdisregard (?:all |any )?(?:the )?(?:previous|prior|above|your) (?:instructions|prompts?|rules)",
    r"\b(?:reveal|print|show|repeat|output) (?:me )?(?:your|the) (?:system prompt|instructions|hidden prompt)",
    r"\byou are now (?:a|an|in|no longer)\b",
    r"\bnew instructions?:",
    r"</?(?:system|im_start|im_end)\b|<\|im_start\|>|\[INST\]",
    r"\b(?:developer|jailbreak|DAN) mode\b",
]
_INJECTION = re.compile("|".join(INJECTION_PATTERNS), re.IGNORECASE)


class OutputGuard:
    """Redacts private facts, placeholders and PII-shaped text. `hold_back` is how many trailing
    characters a stream must keep unsent, so a fact split across chunks is still caught."""

    def __init__(self, private_facts: Iterable[str] = (), pii: bool = True, enabled: bool = True):
        facts = sorted({f.strip() for f in private_facts if f and f.strip()}, key=len, reverse=True)
        parts = [re.escape(f) for f in facts]
        if pii:
            parts += list(PII_PATTERNS.values())
        self.enabled = enabled and bool(parts)
        self.pattern = re.compile("|".join(f"(?:{p})" for p in parts), re.IGNORECASE)
        self.hold_back = max([64, *(len(f) + 1 for f in facts)])

    def __call__(self, text: str) -> str:
        return self.pattern.sub(REDACTED, text) if self.enabled else text

    def found(self, text: str) -> bool:
        return self.enabled and self.pattern.search(text) is not None


class GuardedStream:
    """One candidate's stream through the guard: feed raw deltas, get text that is safe to send.
    `transform` runs on the whole text so far (the guard, then any note-app options)."""

    def __init__(self, guard: OutputGuard, transform: Callable[[str], str] | None = None):
        self.guard = guard
        self.transform = transform or guard
        self.hold_back = guard.hold_back if guard.enabled or transform else 0
        self.raw = ""
        self.sent = 0

    def feed(self, delta: str) -> str:
        self.raw += delta
        clean = self.transform(self.raw)
        return self._take(clean, len(clean) - self.hold_back)

    def finish(self) -> str:
        clean = self.transform(self.raw)
        return self._take(clean, len(clean))

    def _take(self, text: str, upto: int) -> str:
        if upto <= self.sent:
            return ""
        new = text[self.sent : upto]
        self.sent = upto
        return new


def looks_like_injection(texts: Iterable[str]) -> bool:
    return any(_INJECTION.search(t or "") for t in texts)


def neutralise_links(text: str) -> str:
    """`[[Page]]` → `Page`, `#[[Page]]`/`#tag` → `Page`/`tag`, so pasting creates no pages."""
    text = re.sub(r"#?\[\[([^\[\]]*)\]\]", r"\1", text)
    return re.sub(r"(?<![\w&/])#(?=[^\s#\d])([\w/-]+)", r"\1", text)


def for_notes(text: str, tag_prefix: str = "", plain_links: bool = False) -> str:
    """Apply the note-app output options: links made inert, then the tag put in front."""
    if plain_links:
        text = neutralise_links(text)
    return f"{tag_prefix}{text}" if tag_prefix else text
