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

from selftune.pii import PLACEHOLDER, FactMatcher, Span, find_pii, open_from

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
    """Redacts private facts, placeholders and PII."""

    def __init__(self, private_facts: Iterable[str] = (), pii: bool = True, enabled: bool = True):
        self.facts = FactMatcher(private_facts)
        self.pii = pii
        self.enabled = enabled

    def spans(self, text: str, final: bool = True, start: int = 0) -> list[Span]:
        """What must not go out (from `start` on), merged where spans overlap. `final`: the text
        ends here, so a fact cut off at the end counts too."""
        if not self.enabled or len(text) <= start:
            return []
        found = self.facts.spans(text, start)
        found += [Span("placeholder", *m.span(), m.group(0)) for m in _placeholders(text, start)]
        if self.pii:
            found += find_pii(text, start)
        if final and (partial := self.facts.partial_at_end(text, start)) is not None:
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

    def open_from(self, text: str, start: int = 0) -> int:
        """The earliest index (from `start`) where something that must not go out could still
        be in the making at the end of `text`; what lies before it is decided."""
        if not self.enabled:
            return len(text)
        return min(self.facts.open_from(text, start), open_from(text, start, self.pii))

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


def _placeholders(text: str, start: int) -> Iterable[re.Match[str]]:
    return PLACEHOLDER.finditer(text, start)


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

    Text goes out as soon as nothing after it can change it: up to the earliest point where a
    private fact, a placeholder or a PII value could still be in the making (`open_from`: the
    start of a fact's first words, digits that could become a phone number, the word being
    written, which could become an email), and never inside a match. Most of a reply goes out
    as it is written; what is held back is the last word and an unfinished value. The pieces
    sent add up to exactly what `finish_text` gives for the whole text, so a stream never drifts
    from the non-streamed answer."""

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
        self._guarded = ""  # with plain_links: the guarded text so far, and how much of it,
        self._linked = 0  # with its links made inert, has gone out

    def finish_text(self, text: str) -> str:
        """What the whole of `text` becomes (the non-streamed answer)."""
        return for_notes(self.guard.redact(text, self.context), self.tag_prefix, self.plain_links)

    def feed(self, delta: str) -> str:
        if not delta:
            return ""
        self.raw += delta
        if not self.guard.enabled:
            return self._emit(len(self.raw), [], final=False)
        full, start = self._full()
        cut = self.guard.open_from(full, start) - len(self.context)
        if cut <= self.sent:
            return ""
        spans = self.guard.spans(full, False, start)
        return self._emit(self._before_spans(cut, spans), spans, final=False)

    def finish(self) -> str:
        full, start = self._full()
        return self._emit(len(self.raw), self.guard.spans(full, True, start), final=True)

    def _full(self) -> tuple[str, int]:
        """Context + text, and where to read it from: what was sent is decided (no span crosses
        the point sent up to), so only the rest is read, with the text before it for
        look-behinds; until something is sent, the context too (a fact begun there)."""
        return self.context + self.raw, len(self.context) + self.sent if self.sent else 0

    def _before_spans(self, cut: int, spans: list[Span]) -> int:
        """`cut` moved back before any span it would split."""
        for s in spans:
            a, b = s.start - len(self.context), s.end - len(self.context)
            if a < cut < b:
                cut = max(a, self.sent)
        return cut

    def _emit(self, cut: int, spans: list[Span], final: bool) -> str:
        if cut <= self.sent and not final:
            return ""
        piece = self.raw[self.sent : cut]
        if self.guard.enabled:
            piece = _redact_range(self.raw, self.context, spans, self.sent, cut)
        self.sent = max(cut, self.sent)
        if self.plain_links:
            piece = self._inert_links(piece, final)
        if not self.tagged and (piece or final):
            self.tagged = True
            piece = self.tag_prefix + piece
        return piece

    def _inert_links(self, piece: str, final: bool) -> str:
        """The next part of the guarded text with its links made inert, up to a point no link
        or tag can cross (`neutralise_links` of a prefix is then a prefix of the whole's)."""
        self._guarded += piece
        text, upto = self._guarded, len(self._guarded)
        while not final and upto:
            opened = text.rfind("[[", 0, upto)
            if text[upto - 1] in "#[":
                upto -= 1
            elif opened >= 0 and text.find("]]", opened, upto) < 0:
                upto = opened
            else:
                break
        out = neutralise_links(text[:upto])
        if not final and out.endswith("#"):
            out = out[:-1]  # a tag sign whose tag may still come
        new = out[self._linked :]
        self._linked = max(self._linked, len(out))
        return new


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
