"""The engine interface: N candidates for one or several prompts in one batched call.

An engine is anything with `name`, `tokenizer` (the Hugging Face tokenizer whose chat template
renders every prompt, whatever runs the model) and `generate(requests)`. Requests carry their own
sampling settings, a streaming callback and a cancellation check, so a dynamic-batching worker
can hand an engine several clients' requests at once.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

TokenCallback = Callable[[int, str], None]  # (candidate index, new text)


@dataclass
class GenRequest:
    """One prompt (already rendered to text) and how to sample `n` continuations of it."""

    prompt: str
    n: int = 1
    temperature: float = 0.8
    top_p: float = 0.95
    max_tokens: int = 128
    stop: list[str] = field(default_factory=list)
    seed: int | None = None
    on_text: TokenCallback | None = None
    cancelled: Callable[[], bool] = lambda: False

    def batch_key(self) -> tuple[Any, ...]:
        """Requests with the same key can share one forward pass (a seed needs a batch alone)."""
        greedy = self.temperature == 0
        return ("greedy",) if greedy else ("sample", self.temperature, self.top_p, self.seed)


@dataclass
class GenResult:
    texts: list[str]
    prompt_tokens: int
    completion_tokens: list[int]
    finish_reasons: list[str]  # "stop" (end of turn or a stop string), "length", "cancelled"


class Engine(Protocol):
    name: str
    model_id: str
    tokenizer: Any

    def generate(self, requests: list[GenRequest]) -> list[GenResult]:
        """One result per request; all candidates of all compatible requests run together."""
        ...


def render_chat(tokenizer: Any, messages: list[dict[str, str]]) -> str:
    """The prompt for the next assistant turn, rendered with the model's own chat template.
    Control tokens inside the messages (`<|im_start|>` typed by someone) are escaped first, so
    only the template opens and closes turns."""
    from selftune.guards import escape_control_tokens, special_tokens_of

    special = special_tokens_of(tokenizer)
    safe = [
        {**m, "content": escape_control_tokens(m["content"], special)}
        if isinstance(m.get("content"), str)
        else m
        for m in messages
    ]
    return tokenizer.apply_chat_template(safe, tokenize=False, add_generation_prompt=True)


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
