"""The owner's facts: `facts.yaml` in the workspace, written by the owner (or accepted by them from
`selftune facts suggest`), read here and nowhere else.

A public fact can be put in the twin's memory block when a message touches it, so the twin states
it right ("where do you live?"). A private fact is never put in a prompt: its words are added to
what the build scrubs and what the output guard redacts.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from selftune.config import format_validation_error
from selftune.errors import ConfigError
from selftune.memory.index import terms
from selftune.workspace import Workspace, write_private

FACTS_NAME = "facts.yaml"

HEADER = """\
# Facts about you, for your twin's memory (docs/memory.md). One entry per fact:
#
#   - fact: I live in Porthmellin, above the old chapel.   # what is true, in your words
#     topic: home                   # optional: what it is about (home, work, family, pet, age...)
#     keywords: [Porthmellin]       # optional: the words that show the fact is stated right;
#                                   #   they also help find the fact for a message
#     ask: where do you live now?   # optional: how a friend would ask (for `selftune eval`)
#     private: false                # true: never in a prompt, never trained on, never output
#     who: [Tomás]                  # optional: only in replies that no one else sees
#
# A public fact goes into the twin's prompt when a message touches it. A private fact's keywords
# (or its whole text when it has none) are scrubbed from datasets and redacted from output.
# `selftune facts suggest` proposes facts found in your own messages and notes;
# `selftune facts accept N` adds one here. Nothing is added without you.
"""

# Words that bring a topic to mind: a question with "live" finds the fact whose topic is "home".
TOPIC_WORDS = {
    "home": ["live", "living", "home", "house", "flat", "town", "city", "address", "moved"],
    "origin": ["from", "grew", "born", "hometown"],
    "work": ["work", "job", "living", "office", "career", "business", "trade"],
    "age": ["old", "age", "birthday", "born"],
    "birthday": ["birthday", "born", "birth"],
    "family": ["family", "sister", "brother", "mum", "mom", "dad", "parents", "niece", "nephew"],
    "partner": ["partner", "wife", "husband", "girlfriend", "boyfriend", "married", "dating"],
    "pet": ["dog", "cat", "pet", "puppy", "called", "name"],
    "hobby": ["hobby", "weekend", "free", "fun", "play"],
    "food": ["eat", "food", "favourite", "favorite", "cook", "dinner"],
}


def variants(words: set[str]) -> set[str]:
    """Each word and its bare forms ("building" → "build", "builde"; "hives" → "hive"), so a
    question and a fact meet on the word, not on its ending."""
    out = set(words)
    for w in words:
        if len(w) > 5 and w.endswith("ing"):
            out |= {w[:-3], w[:-3] + "e"}
        elif len(w) > 4 and w.endswith("ed"):
            out |= {w[:-2], w[:-1]}
        elif len(w) > 3 and w.endswith("s") and not w.endswith("ss"):
            out.add(w[:-1])
    return out


class Fact(BaseModel):
    model_config = ConfigDict(extra="forbid")

    fact: str = Field(min_length=1, description="What is true, in the owner's words.")
    topic: str = Field("", description="What the fact is about: home, work, family, pet, age...")
    keywords: list[str] = Field(
        default_factory=list, description="Words that show the fact is stated right."
    )
    ask: str = Field("", description="How a friend would ask about it (eval probes).")
    private: bool = Field(False, description="Never in a prompt, never trained on, never output.")
    who: list[str] = Field(
        default_factory=list,
        description="Only for these people: a reply anyone else sees never holds it (empty: anyone).",
    )

    def words(self) -> set[str]:
        """Words a message must share with the fact to bring it to mind."""
        found = set(terms(f"{self.fact} {self.topic} {' '.join(self.keywords)}", limit=64))
        for word in terms(self.topic, limit=8):
            found |= set(TOPIC_WORDS.get(word, []))
        return variants(found)

    def secrets(self) -> list[str]:
        """What must never be output for a private fact: its keywords, or its whole text."""
        return [k for k in self.keywords if k.strip()] or [self.fact]

    def values(self) -> list[str]:
        """The words that show a text states this fact: its keywords, or else the names and
        numbers in it ("I live in Lyon" → ["Lyon"]; the first word never counts)."""
        if any(k.strip() for k in self.keywords):
            return [k for k in self.keywords if k.strip()]
        words = re.findall(r"[\w'-]+", self.fact)[1:]
        return [w for w in words if w[:1].isupper() or any(c.isdigit() for c in w)]


class FactsFile(BaseModel):
    model_config = ConfigDict(extra="forbid")

    facts: list[Fact] = Field(default_factory=list)


@dataclass
class Facts:
    """The facts of one workspace (empty when there is no facts.yaml)."""

    items: list[Fact]
    path: Path | None = None

    @property
    def public(self) -> list[Fact]:
        return [f for f in self.items if not f.private]

    @property
    def private(self) -> list[Fact]:
        return [f for f in self.items if f.private]

    def secrets(self) -> list[str]:
        return [s for f in self.private for s in f.secrets()]

    def stated_in(self, text: str) -> list[Fact]:
        """Public facts whose values `text` holds as whole words, in any case: the facts the
        owner's own words state or rely on (an accepted suggestion's keywords are the values
        found in its source messages, so those messages always match)."""
        folded = text.casefold()
        return [
            f
            for f in self.public
            if any(
                re.search(rf"(?<!\w){re.escape(v.casefold())}(?!\w)", folded) for v in f.values()
            )
        ]

    def matching(self, text: str, limit: int) -> list[Fact]:
        """Public facts that share words with `text`, the most shared first (ties: file order)."""
        if limit <= 0:
            return []
        asked = [variants({w}) for w in terms(text, limit=64)]
        scored = [
            (sum(bool(forms & f.words()) for forms in asked), i, f)
            for i, f in enumerate(self.public)
        ]
        return [f for n, _, f in sorted(scored, key=lambda x: (-x[0], x[1])) if n > 0][:limit]


SECOND_PERSON = [
    (r"\bI am\b", "You are"), (r"\bI'm\b", "You're"), (r"\bI've\b", "You've"),
    (r"\bI was\b", "You were"), (r"\bI\b", "You"), (r"\bmy\b", "your"), (r"\bMy\b", "Your"),
    (r"\bme\b", "you"), (r"\bmine\b", "yours"), (r"\bmyself\b", "yourself"),
]  # fmt: skip


def second_person(fact: str) -> str:
    """ "I live in Lyon; my dog is Rex." → "You live in Lyon; your dog is Rex." (a "You" inside a
    sentence is written "you")."""
    out = fact
    for pattern, replacement in SECOND_PERSON:
        out = re.sub(pattern, replacement, out)
    out = re.sub(r"(?<=[\w,;:] )You(?=r?\b)", "you", out)
    return out[:1].upper() + out[1:]


def facts_path(root: Path) -> Path:
    return Path(root) / FACTS_NAME


def load_facts(root: Path) -> Facts:
    """facts.yaml of the workspace at `root`; every problem is reported at once, with its entry."""
    path = facts_path(root)
    if not path.exists():
        return Facts([], None)
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from exc
    if isinstance(data, list):  # a bare list of facts is fine too
        data = {"facts": data}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected `facts:` with a list of facts under it")
    try:
        parsed = FactsFile.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(
            format_validation_error(exc, str(path)) + "\n  (each fact needs at least `fact: ...`)"
        ) from exc
    return Facts(parsed.facts, path)


def _entry(fact: Fact, indent: str) -> str:
    entry: dict[str, Any] = {"fact": fact.fact}
    if fact.topic:
        entry["topic"] = fact.topic
    if fact.keywords:
        entry["keywords"] = fact.keywords
    if fact.ask:
        entry["ask"] = fact.ask
    if fact.who:
        entry["who"] = fact.who
    entry["private"] = fact.private
    dumped = yaml.safe_dump(
        [entry], allow_unicode=True, sort_keys=False, default_flow_style=None, width=1000
    )
    return re.sub(r"^", indent, dumped.rstrip("\n"), flags=re.MULTILINE)


def render_facts(facts: list[Fact]) -> str:
    """facts.yaml text: the commented header, then one block per fact (empty fields left out)."""
    if not facts:
        return HEADER + "facts: []\n"
    return "\n".join([HEADER + "facts:", *(_entry(f, "  ") for f in facts)]) + "\n"


def add_fact(root: Path, fact: Fact) -> Facts:
    """Append `fact` to facts.yaml, keeping the owner's comments (the file is created with its
    header when missing, and rewritten only if appending would not read back right)."""
    path = facts_path(root)
    current = load_facts(root)
    items = [*current.items, fact]
    if current.items:
        text = path.read_text(encoding="utf-8")
        found = re.search(r"^([ \t]*)- ", text, re.MULTILINE)
        indent = found.group(1) if found else "  "
        write_private(path, text.rstrip("\n") + "\n" + _entry(fact, indent) + "\n")
        try:
            if load_facts(root).items == items:
                return Facts(items, path)
        except ConfigError:
            pass
    write_private(path, render_facts(items))  # it holds the private facts: 0600
    return Facts(items, path)


def private_facts(ws: Workspace) -> list[str]:
    """Everything that must never be trained on or output: `build.private_facts` of twin.yaml
    and the private facts of facts.yaml."""
    listed = list(ws.config.build.private_facts or [])
    return list(dict.fromkeys(listed + load_facts(ws.root).secrets()))
