"""What the owner's reviews mean, for every stage that reads them (improve trains on them, the
evaluation holds some out and scores them, the server shows them): the prompt of a logged sample,
and the samples read from store.sqlite (`selftune.store.samples`) turned into kept texts (SFT),
chosen-vs-rejected pairs (DPO) and thumbs (KTO).

Rules kept here, in one place:
- only text the owner kept, edited or gave a thumbs up is ever a target; other candidates are
  only ever the rejected side of a pair or an undesirable thumb;
- a candidate the output guard redacted (or that still holds PII-shaped text) is never used;
- the tag prefix the server put before a candidate (`serve.tag_prefix`) is taken off again;
- the most recent `held_out` share of reviewed samples is kept back for the evaluation.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from selftune.config import TwinConfig
from selftune.guards import REDACTED, OutputGuard
from selftune.store.samples import SampleLog
from selftune.twin import Twin

GOOD, BAD = 1, -1


@dataclass
class Prompt:
    """One prompt: chat `messages` to reply to, or `text` to continue."""

    kind: str  # "chat" or "text"
    messages: list[dict[str, str]] | None = None
    text: str | None = None
    real: str | None = None  # the owner's own continuation (training split prompts only)
    source: str = "file"

    def stored(self) -> dict[str, Any]:
        """How the sample log keeps it (`samples.prompt`)."""
        return {"messages": self.messages} if self.kind == "chat" else {"text": self.text}

    def shown(self) -> str:
        """One line for the terminal and the web page: the last message, or the text."""
        if self.kind == "chat" and self.messages:
            return self.messages[-1]["content"]
        return self.text or ""


def stored_prompt(sample: dict[str, Any], twin: Twin) -> Prompt | None:
    """The prompt of a logged sample as `Prompt`, whichever endpoint logged it: amplify's
    {"messages"}/{"text"}, /v1/reply's author turns, chat messages, or a plain text prompt
    (a message to reply to when its params say `chat`). None when it cannot be rebuilt."""
    prompt = sample["prompt"]
    params = sample.get("params") or {}
    if isinstance(prompt, dict):
        if isinstance(prompt.get("messages"), list):
            return Prompt("chat", messages=twin.chat_messages(prompt["messages"]))
        if isinstance(prompt.get("text"), str):
            return Prompt("text", text=prompt["text"])
        return None
    if isinstance(prompt, list) and prompt and isinstance(prompt[0], dict):
        if "author" in prompt[0]:
            turns = [(str(t.get("author", "")), str(t.get("text", ""))) for t in prompt]
            return Prompt("chat", messages=twin.reply_messages(turns))
        if "role" in prompt[0]:
            messages = [{"role": m["role"], "content": str(m.get("content") or "")} for m in prompt]
            return Prompt("chat", messages=twin.chat_messages(messages))
        return None
    if isinstance(prompt, str):
        if params.get("chat"):
            return Prompt(
                "chat", messages=twin.chat_messages([{"role": "user", "content": prompt}])
            )
        return Prompt("text", text=prompt)
    return None


@dataclass
class Kept:
    prompt: Prompt
    text: str
    sample_id: int
    edited: bool = False


@dataclass
class Pair:
    prompt: Prompt
    chosen: str
    rejected: str
    sample_id: int


@dataclass
class Thumb:
    prompt: Prompt
    text: str
    desirable: bool
    sample_id: int


@dataclass
class Picks:
    """Training material from reviewed samples, and what was left out and why."""

    kept: list[Kept] = field(default_factory=list)
    pairs: list[Pair] = field(default_factory=list)
    thumbs: list[Thumb] = field(default_factory=list)
    samples: list[int] = field(default_factory=list)
    left_out: dict[str, int] = field(default_factory=dict)

    def counts(self) -> dict[str, Any]:
        return {
            "samples": len(self.samples),
            "kept": len(self.kept),
            "edited": sum(k.edited for k in self.kept),
            "pairs": len(self.pairs),
            "thumbs_up": sum(t.desirable for t in self.thumbs),
            "thumbs_down": sum(not t.desirable for t in self.thumbs),
            "left_out": dict(self.left_out),
        }

    def skip(self, why: str) -> None:
        self.left_out[why] = self.left_out.get(why, 0) + 1


def thumb(rating: int) -> int:
    """+1 / -1 for a rating: thumbs as they are, stars 4-5 up and 0-2 down, 3 neither."""
    if rating in (GOOD, BAD):
        return rating
    if rating >= 4:
        return GOOD
    if rating <= 2:
        return BAD
    return 0


def untagged(text: str, tags: list[str]) -> str:
    """`text` without a tag prefix the server put before it (e.g. '#[[twin says]] ')."""
    for tag in tags:
        if tag and text.startswith(tag):
            return text[len(tag) :]
        if tag.strip() and text.startswith(tag.strip()):
            return text[len(tag.strip()) :].lstrip(" ")
    return text


def split_held_out(samples: list[dict[str, Any]], fraction: float) -> tuple[list, list]:
    """(older samples to train on, the most recent `fraction` kept back), by sample id."""
    ordered = sorted(samples, key=lambda s: s["id"])
    held = math.ceil(len(ordered) * fraction) if fraction > 0 and len(ordered) >= 5 else 0
    return ordered[: len(ordered) - held], ordered[len(ordered) - held :]


def build_picks(
    samples: list[dict[str, Any]], twin: Twin, tags: list[str], guard: OutputGuard
) -> Picks:
    """Kept texts, pairs and thumbs of reviewed samples (see the module docstring's rules)."""
    out = Picks()
    for sample in samples:
        prompt = stored_prompt(sample, twin)
        if prompt is None:
            out.skip("prompt could not be rebuilt")
            continue
        out.samples.append(sample["id"])
        texts = [untagged(t, tags).strip() for t in sample["candidates"]]

        def usable(text: str) -> bool:
            return bool(text) and REDACTED not in text and not guard.found(text)

        votes: dict[int, int] = {}
        for r in sample.get("ratings", []):
            votes[r["candidate"]] = thumb(r["rating"])  # the latest rating of a candidate counts
        chosen: str | None = None
        picked = sample.get("picked")
        if picked is not None and 0 <= picked < len(texts):
            edited = sample.get("edited")
            chosen = untagged(edited, tags).strip() if edited else texts[picked]
            if not usable(chosen):
                out.skip("kept text redacted by the guard")
                chosen = None
            else:
                out.kept.append(Kept(prompt, chosen, sample["id"], bool(edited)))
                if edited and usable(texts[picked]) and texts[picked] != chosen:
                    out.pairs.append(Pair(prompt, chosen, texts[picked], sample["id"]))
        for i, text in enumerate(texts):
            vote = votes.get(i, 0)
            if vote and not usable(text):
                out.skip("rated text redacted by the guard")
                continue
            if vote:
                out.thumbs.append(Thumb(prompt, text, vote == GOOD, sample["id"]))
            if chosen is None or i == picked or text == chosen or vote == GOOD:
                continue
            if usable(text):
                out.pairs.append(Pair(prompt, chosen, text, sample["id"]))
        if chosen is None:  # thumbs up vs thumbs down within one sample make pairs too
            ups = [texts[i] for i, v in votes.items() if v == GOOD and usable(texts[i])]
            downs = [texts[i] for i, v in votes.items() if v == BAD and usable(texts[i])]
            out.pairs += [Pair(prompt, u, d, sample["id"]) for u in ups for d in downs if u != d]
        if picked is not None and chosen is not None and votes.get(picked, 0) == 0:
            out.thumbs.append(Thumb(prompt, chosen, True, sample["id"]))
    return out


def reviewed_picks(
    log: SampleLog, twin: Twin, tags: list[str], guard: OutputGuard, held_out: float
) -> tuple[Picks, Picks]:
    """(picks to train on, held-out picks) from everything reviewed in the store."""
    train, held = split_held_out(log.reviewed(), held_out)
    return build_picks(train, twin, tags, guard), build_picks(held, twin, tags, guard)


def tags_of(config: TwinConfig) -> list[str]:
    """Tag prefixes a logged candidate may carry: the configured one."""
    tag = config.serve.tag_prefix
    return [tag] if tag else []


def with_tag(text: str, config: TwinConfig) -> str:
    """Kept text as it goes back into the owner's notes: with the configured tag prefix."""
    tag = config.serve.tag_prefix
    return f"{tag}{text}" if tag and not text.startswith(tag) else text
