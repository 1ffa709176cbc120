"""The engine interface: N candidates for one or several prompts in one batched call.

An engine is anything with `name`, `tokenizer` (the Hugging Face tokenizer whose chat template
renders every prompt, whatever runs the model), `supports` (which optional request fields it can
honour) and `generate(requests)`. Requests carry their own sampling settings, a streaming
callback and a cancellation check, so a dynamic-batching worker can hand an engine several
clients' requests at once. A request's seed fixes its text whatever runs beside it.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

TokenCallback = Callable[[int, str], None]  # (candidate index, new text)

# GenRequest fields that an engine honours only if it lists them in its `supports`; a request
# that sets one of them to a non-default value is refused (HTTP 400) by an engine without it
OPTIONAL_FIELDS = (
    "logprobs",
    "top_logprobs",
    "presence_penalty",
    "frequency_penalty",
    "logit_bias",
    "response_format",
)
MAX_TOP_LOGPROBS = 20


@dataclass
class GenRequest:
    """One prompt (already rendered to text) and how to sample `n` continuations of it."""

    prompt: str
    n: int = 1
    temperature: float = 0.8
    top_p: float = 0.95
    max_tokens: int = 128
    stop: list[str] = field(default_factory=list)
    seed: int | None = None  # candidate c samples from its own generator seeded `seed + c`
    logprobs: bool = False  # return each chosen token's log-probability (model distribution)
    top_logprobs: int = 0  # and this many most likely alternatives per position
    presence_penalty: float = 0.0  # OpenAI's: subtracted once from every token generated so far
    frequency_penalty: float = 0.0  # OpenAI's: subtracted per occurrence so far
    logit_bias: dict[int, float] = field(default_factory=dict)  # token id -> added to its logit
    # None: text; {"type": "json_object"} or {"type": "json_schema", "json_schema": {...}}
    response_format: dict[str, Any] | None = None
    on_text: TokenCallback | None = None
    cancelled: Callable[[], bool] = lambda: False

    def optional_fields(self) -> list[str]:
        """The OPTIONAL_FIELDS this request sets to something other than their default."""
        return [
            name
            for name in OPTIONAL_FIELDS
            if getattr(self, name) not in (None, False, 0, 0.0, {}, {"type": "text"})
        ]

    def batch_key(self) -> tuple[Any, ...]:
        """Requests with the same key can share one forward pass (engines that sample each row
        with its own settings and generator, like transformers, ignore it)."""
        greedy = self.temperature == 0
        return ("greedy",) if greedy else ("sample", self.temperature, self.top_p, self.seed)


@dataclass
class TokenLogprob:
    """One generated token (or one alternative to it) and its log-probability under the model."""

    token: str
    logprob: float
    bytes: list[int]
    top: list[TokenLogprob] = field(default_factory=list)  # alternatives, most likely first


@dataclass
class GenResult:
    texts: list[str]
    prompt_tokens: int
    completion_tokens: list[int]
    finish_reasons: list[str]  # "stop" (end of turn or a stop string), "length", "cancelled"
    logprobs: list[list[TokenLogprob]] | None = None  # per candidate, per token of its text


def logprobs_within(entries: list[TokenLogprob], text: str) -> list[TokenLogprob]:
    """The entries of the tokens that lie inside `text` (a stop string may have cut it)."""
    room, kept = len(text.encode("utf-8")), []
    for entry in entries:
        room -= len(entry.bytes)
        if room < 0:
            break
        kept.append(entry)
    return kept


def unsupported(engine: Any, request: GenRequest) -> list[str]:
    """The optional fields `request` sets that `engine` cannot honour."""
    supports = getattr(engine, "supports", frozenset())
    return [name for name in request.optional_fields() if name not in supports]


class Engine(Protocol):
    name: str
    model_id: str
    tokenizer: Any
    supports: frozenset[str]  # the OPTIONAL_FIELDS it honours

    def generate(self, requests: list[GenRequest]) -> list[GenResult]:
        """One result per request; all candidates of all compatible requests run together."""
        ...


def render_chat(tokenizer: Any, messages: list[dict[str, str]]) -> str:
    """The prompt for the next assistant turn, rendered with the model's own chat template: the
    one renderer of chat prompts. Control tokens inside the messages (`<|im_start|>` typed by
    someone) are escaped first, so only the template opens and closes turns."""
    from selftune.guards import escape_messages
    from selftune.templates import template_messages, template_options

    # a template that refuses a system message (Gemma 2's) gets it in the first user turn
    safe = template_messages(tokenizer, escape_messages(tokenizer, messages))
    return tokenizer.apply_chat_template(
        safe, tokenize=False, add_generation_prompt=True, **template_options(tokenizer)
    )


class Detokenizer:
    """One candidate's text as its tokens arrive, without decoding them all again each time:
    each new token decodes a window of a few tokens (from the token before the last piece
    given out, so a tokenizer that drops a word's leading space at the start of a text drops
    it in both decodes alike), as TGI and vLLM do; a half-decoded multi-byte character waits
    for its last byte. `text` is `tokenizer.decode(tokens, skip_special_tokens=True)`."""

    def __init__(self, tokenizer: Any):
        self.decode = functools.partial(tokenizer.decode, skip_special_tokens=True)
        self.tokens: list[int] = []
        self.text = ""
        self._prefix = self._read = 0  # tokens[prefix:read] made the last piece given out

    def add(self, token: int) -> str:
        """Take the next token; returns the text it completes (often all of it, or nothing)."""
        self.tokens.append(token)
        return self._advance(final=False)

    def flush(self) -> str:
        """The text still held back (an unfinished character shows as U+FFFD, as decode does)."""
        return self._advance(final=True)

    def _advance(self, final: bool) -> str:
        done = self.decode(self.tokens[self._prefix : self._read])
        now = self.decode(self.tokens[self._prefix :])
        if len(now) <= len(done) or (now.endswith("\ufffd") and not final):
            return ""
        new = now[len(done) :]
        self._prefix, self._read = self._read, len(self.tokens)
        self.text += new
        return new


class StopScanner:
    """Follows one candidate's text as it grows: cuts it at a stop string and says what is safe
    to stream (text that could still turn out to start a stop string is held back)."""

    def __init__(self, stop: list[str]):
        self.stop = [s for s in stop if s]
        self.emitted = 0
        self.stopped = False
        self.text = ""

    def update(self, text: str) -> str:
        """Give the whole text so far; returns the new text that may be streamed now."""
        if self.stopped:
            return ""
        cut = min((i for i in (text.find(s) for s in self.stop) if i >= 0), default=-1)
        if cut >= 0:
            self.stopped = True
            text = text[:cut]
            safe = len(text)
        else:
            safe = len(text) - self._held_back(text)
        self.text = text
        new = text[self.emitted : safe] if safe > self.emitted else ""
        self.emitted = max(self.emitted, safe)
        return new

    def flush(self) -> str:
        new = self.text[self.emitted :]
        self.emitted = len(self.text)
        return new

    def _held_back(self, text: str) -> int:
        longest = 0
        for s in self.stop:
            for k in range(min(len(s) - 1, len(text)), 0, -1):
                if text.endswith(s[:k]):
                    longest = max(longest, k)
                    break
        # a half-decoded multi-byte character shows as U+FFFD until its last byte arrives
        if text.endswith("\ufffd"):
            longest = max(longest, 1)
        return longest
