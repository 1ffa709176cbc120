"""Guards on what goes in and out of the twin.

Out: private facts, the dataset's placeholders and PII (all as `selftune.pii` defines them, the
same definition build scrubs with and eval counts with) are replaced by `[redacted]` before any
text leaves, streamed text included. Facts match in any case and whitespace; a fact cut short at
the end of a text, or begun in the prompt and finished in the output, is redacted too.
In: text that looks like a prompt injection is flagged, and refused in unattended use (a note app
or a bot calling the API with nobody reading first); control tokens such as `<|im_start|>` inside
content are escaped so they stay text. Note-app options tag output and make links inert.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

from selftune.pii import LONGEST_SPAN, PLACEHOLDER, FactMatcher, Span, find_pii

REDACTED = "[redacted]"
CONTEXT_CHARS = 400  # how much of the prompt is read with the output (a fact begun there)

INJECTION_PATTERNS = [
    r"\bignore (?:all |any )?(?:the )?(?:previous|prior|above|earlier|preceding) (?:instructions|prompts?|messages?|rules)",
    r"\bdisregard (?:all |any )?(?:the )?(?:previous|prior|above|your) (?:instructions|prompts?|rules)",
    r"\b(?:reveal|print|show|repeat|output) (?:me )?(?:your|the) (?:system prompt|instructions|hidden prompt)",
    r"\byou are now (?:a|an|in|no longer)\b",
    r"\bnew instructions?:",
    r"</?(?:system|im_start|im_end)\b|<\|[\w.-]{1,40}\|>|\[/?INST\]|<start_of_turn>",
    r"\b(?:developer|jailbreak|DAN) mode\b",
]
_INJECTION = re.compile("|".join(INJECTION_PATTERNS), re.IGNORECASE)
_CONTROL_SHAPE = re.compile(r"<\|[\w.-]{1,40}\|>|\[/?INST\]|</?s>|<(?:start|end)_of_turn>")
_ZWSP = "\u200b"


class OutputGuard:
    """Redacts private facts, placeholders and PII. `hold_back` is how many non-space characters
    a stream keeps unsent, so nothing that could still turn into a match has gone out."""

    def __init__(self, private_facts: Iterable[str] = (), pii: bool = True, enabled: bool = True):
        self.facts = FactMatcher(private_facts)
        self.pii = pii
        self.enabled = enabled
        self.hold_back = max(LONGEST_SPAN, self.facts.longest + 1)

    def spans(self, text: str, final: bool = True) -> list[Span]:
        """What must not go out, merged where spans overlap. `final`: the text ends here, so a
        fact cut off at the end counts too."""
        if not self.enabled or not text:
            return []
        found = self.facts.spans(text)
        found += [Span("placeholder", *m.span(), m.group(0)) for m in PLACEHOLDER.finditer(text)]
        if self.pii:
            found += find_pii(text)
        if final and (partial := self.facts.partial_at_end(text)) is not None:
            found.append(partial)
        merged: list[Span] = []
        for s in sorted(found, key=lambda s: (s.start, -s.end)):
            if merged and s.start < merged[-1].end:
                last = merged[-1]
                end = max(last.end, s.end)
                merged[-1] = Span(last.kind, last.start, end, text[last.start : end])
            else:
                merged.append(s)
        return merged

    def redact(self, text: str, context: str = "", final: bool = True) -> str:
        """`text` with every span redacted; `context` (the prompt) is read with it, so a fact or
        number that starts in the prompt and ends in `text` loses its `text` part."""
        if not self.enabled:
            return text
        context = context[-CONTEXT_CHARS:]
        return _redact_range(text, context, self.spans(context + text, final), 0, len(text))

    def __call__(self, text: str, context: str = "") -> str:
        return self.redact(text, context)

    def found(self, text: str) -> bool:
        return bool(self.spans(text))


def output_guard(
    private_facts: Iterable[str], serve: Any = None, training: bool = False
) -> OutputGuard:
    """The one way to build the output guard: every private fact, on unless `serve.guard_output`
    is off. For choosing training material (`training`) it is always on."""
    enabled = training or serve is None or bool(serve.guard_output)
    return OutputGuard(private_facts, enabled=enabled)


def _redact_range(text: str, context: str, spans: list[Span], start: int, end: int) -> str:
    """text[start:end] with the parts of `spans` (offsets into context + text) replaced."""
    shift, out, at = len(context), [], start
    for s in spans:
        a, b = max(s.start - shift, start), min(s.end - shift, end)
        if b <= a:
            continue
        out.append(text[at:a] if a > at else "")
        out.append(REDACTED)
        at = max(at, b)
    out.append(text[at:end])
    return "".join(out)


class GuardedStream:
    """One candidate's stream through the guard: feed raw deltas, get text that is safe to send.

    Text is sent up to a cut that no match can cross: at least `hold_back` non-space characters
    before the end, at a whitespace (so an email or URL still growing is never split), before any
    match and before an unclosed `[[link`. The pieces sent add up to exactly what `finish_text`
    gives for the whole text, so a stream never drifts from the non-streamed answer."""

    def __init__(
        self,
        guard: OutputGuard,
        context: str = "",
        tag_prefix: str = "",
        plain_links: bool = False,
    ):
        self.guard = guard
        self.context = context[-CONTEXT_CHARS:]
        self.tag_prefix = tag_prefix
        self.plain_links = plain_links
        self.raw = ""
        self.sent = 0  # raw characters already decided and sent
        self.tagged = False

    def finish_text(self, text: str) -> str:
        """What the whole of `text` becomes (the non-streamed answer)."""
        return for_notes(self.guard.redact(text, self.context), self.tag_prefix, self.plain_links)

    def feed(self, delta: str) -> str:
        self.raw += delta
        if not self.guard.enabled and not self.plain_links:
            return self._emit(len(self.raw), [], final=False)
        cut = self._hold_back_cut()
        if cut <= self.sent:
            return ""
        spans = self._spans(final=False)
        return self._emit(self._safe_cut(cut, spans), spans, final=False)

    def finish(self) -> str:
        return self._emit(len(self.raw), self._spans(final=True), final=True)

    def _spans(self, final: bool) -> list[Span]:
        """Spans of context + text, read from a little before what was sent (what lies further
        back was decided already), so a long stream costs the same per piece as a short one."""
        full = self.context + self.raw
        start = max(0, len(self.context) + self.sent - CONTEXT_CHARS)
        found = self.guard.spans(full[start:], final)
        return [Span(s.kind, s.start + start, s.end + start, s.value) for s in found]

    def _hold_back_cut(self) -> int:
        """`hold_back` non-space characters before the end, moved back to a whitespace."""
        raw, need, cut = self.raw, self.guard.hold_back, len(self.raw)
        while cut > self.sent and need > 0:
            cut -= 1
            need -= not raw[cut].isspace()
        if need > 0:
            return self.sent
        while cut > self.sent and not raw[cut].isspace():
            cut -= 1
        return cut

    def _safe_cut(self, cut: int, spans: list[Span]) -> int:
        """`cut` moved back before any span and any unclosed `[[link` it would split."""
        for s in spans:
            a, b = s.start - len(self.context), s.end - len(self.context)
            if a < cut < b:
                cut = max(a, self.sent)
        if self.plain_links:
            raw = self.raw
            opened = raw.rfind("[[", self.sent, cut)
            if opened >= 0 and raw.find("]]", opened, cut) < 0:
                cut = opened - 1 if opened > self.sent and raw[opened - 1] == "#" else opened
        return max(cut, self.sent)

    def _emit(self, cut: int, spans: list[Span], final: bool) -> str:
        if cut <= self.sent and not (final and not self.tagged):
            return ""
        piece = self.raw[self.sent : cut]
        if self.guard.enabled:
            piece = _redact_range(self.raw, self.context, spans, self.sent, cut)
        self.sent = cut
        if self.plain_links:
            piece = neutralise_links(piece)
        if not self.tagged and (piece or final):
            self.tagged = True
            piece = self.tag_prefix + piece
        return piece


def looks_like_injection(texts: Iterable[str]) -> bool:
    return any(_INJECTION.search(t or "") for t in texts)


def escape_messages(tokenizer: Any, messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """`messages` with control tokens in their text content escaped, for rendering with the
    chat template (at use and in training alike)."""
    special = special_tokens_of(tokenizer)
    return [
        {**m, "content": escape_control_tokens(m["content"], special)}
        if isinstance(m.get("content"), str)
        else m
        for m in messages
    ]


def escape_control_tokens(text: str, special_tokens: Iterable[str] = ()) -> str:
    """`text` with the tokenizer's special tokens (and the usual chat-template control shapes)
    broken by a zero-width space, so a message can never open or close a turn."""
    if not text:
        return text
    tokens = sorted({t for t in special_tokens if t and len(t) > 1}, key=len, reverse=True)
    for token in tokens:
        if token in text:
            text = text.replace(token, token[0] + _ZWSP + token[1:])
    return _CONTROL_SHAPE.sub(lambda m: m.group(0)[0] + _ZWSP + m.group(0)[1:], text)


def special_tokens_of(tokenizer: Any) -> list[str]:
    """Every special token a Hugging Face tokenizer would parse out of plain text."""
    found = set(getattr(tokenizer, "all_special_tokens", None) or [])
    for added in (getattr(tokenizer, "added_tokens_decoder", None) or {}).values():
        if getattr(added, "special", False):
            found.add(getattr(added, "content", str(added)))
    return sorted(found)


def neutralise_links(text: str) -> str:
    """`[[Page]]` → `Page`, `#[[Page]]`/`#tag` → `Page`/`tag`, so pasting creates no pages."""
    text = re.sub(r"#?\[\[([^\[\]]*)\]\]", r"\1", text)
    return re.sub(r"(?<![\w&/])#(?=[^\s#\d])([\w/-]+)", r"\1", text)


def for_notes(text: str, tag_prefix: str = "", plain_links: bool = False) -> str:
    """Apply the note-app options: links made inert, then the tag put in front."""
    if plain_links:
        text = neutralise_links(text)
    return f"{tag_prefix}{text}" if tag_prefix else text
