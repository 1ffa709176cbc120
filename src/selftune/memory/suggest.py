"""Facts proposed from the owner's own writing, for the owner to accept or reject.

Candidates come from the owner's messages and notes only (never from what others wrote):
self-statements ("i live in…", "my sister is…", "i've got a dog called…", "my birthday is…"),
names the owner calls people and things by, and the people and places they mention most. Each
candidate says where it was found. `selftune facts suggest` numbers them and keeps them in
`facts.suggestions.json`; `accept N` appends one to facts.yaml, `reject N` never proposes it
again. Nothing is added to facts.yaml without the owner.
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path

from selftune.errors import SelftuneError
from selftune.memory.facts import Fact, Facts
from selftune.memory.index import STOPWORDS
from selftune.store import Store
from selftune.store.memory_index import frequent_contacts, owner_texts
from selftune.workspace import write_private

SUGGESTIONS_NAME = "facts.suggestions.json"
MAX_WHERE = 3
_END = r"(?=[.,!?;:()\n—–-]| and | but | with | now\b| so |$)"
_NAME = r"([^\W\d_][\w'-]{1,24})"
RELATIONS = (
    "sister|brother|mum|mom|mother|dad|father|wife|husband|partner|girlfriend|boyfriend|son|"
    "daughter|niece|nephew|aunt|uncle|cousin|gran|grandma|grandad|grandpa|best friend|dog|cat|"
    "horse|flatmate|housemate|boss"
)
NOT_A_NAME = STOPWORDS | frozenset(
    [
        "coming",
        "going",
        "being",
        "doing",
        "getting",
        "having",
        "making",
        "taking",
        "back",
        "home",
        "away",
        "here",
        "there",
        "out",
        "off",
        "round",
        "around",
        "over",
        "the",
        "a",
        "an",
        "and",
        "but",
        "now",
        "still",
        "also",
        "always",
        "never",
        "just",
        "really",
        "very",
        "so",
        "too",
        "said",
        "says",
        "thinks",
        "reckons",
        "wants",
        "asked",
        "told",
    ]
)
# (pattern, topic, how the fact reads, which groups are the words that show it is stated)
PATTERNS: list[tuple[re.Pattern[str], str, str, tuple[int, ...]]] = [
    (re.compile(rf"\bi live in ((?:the )?[\w' -]{{2,40}}?){_END}", re.I), "home",
     "I live in {1}", (1,)),
    (re.compile(rf"\bwe live in ((?:the )?[\w' -]{{2,40}}?){_END}", re.I), "home",
     "We live in {1}", (1,)),
    (re.compile(rf"\bi(?:'m| am) (?:originally )?from ([\w' -]{{2,40}}?){_END}", re.I), "origin",
     "I am from {1}", (1,)),
    (re.compile(rf"\bi work (?:at|for|in) ((?:the )?[\w'& -]{{2,40}}?){_END}", re.I), "work",
     "I work at {1}", (1,)),
    (re.compile(rf"\bi work as an? ([\w' -]{{2,40}}?){_END}", re.I), "work",
     "I work as a {1}", (1,)),
    (re.compile(r"\bi(?:'m| am) (\d{1,3}) years? old\b", re.I), "age", "I am {1} years old",
     (1,)),
    (re.compile(r"\bi(?:'ll be| turn| turned|'m turning| am turning) (\d{1,3})\b", re.I), "age",
     "I am turning {1}", (1,)),
    (re.compile(rf"\bmy birthday(?: is|'s)(?: on)? ([\w ]{{3,24}}?){_END}", re.I), "birthday",
     "My birthday is {1}", (1,)),
    (re.compile(rf"\bi was born (?:in|on) ([\w ,]{{3,30}}?){_END}", re.I), "birthday",
     "I was born in {1}", (1,)),
    (re.compile(rf"\bmy ({RELATIONS})(?:'s name is|'s called| is called| is named|,)? {_NAME}\b",
                re.I), "family", "My {1} is {2}", (2,)),
    (re.compile(rf"\bi(?:'ve| have)(?: got)? an? ([a-z]+) (?:called|named) {_NAME}", re.I), "pet",
     "I have a {1} called {2}", (2,)),
    (re.compile(rf"\b(?:my|the|our) ([a-z]+) is called {_NAME}", re.I), "names",
     "My {1} is called {2}", (2,)),
    (re.compile(rf"\bmy favourite ([a-z]+) is ([\w' -]{{2,30}}?){_END}", re.I), "favourites",
     "My favourite {1} is {2}", (2,)),
    (re.compile(rf"\b(?:call me|calls me|my name is|everyone calls me) {_NAME}", re.I), "name",
     "People call me {1}", (1,)),
]  # fmt: skip


@dataclass
class Candidate:
    fact: str
    topic: str
    keywords: list[str]
    where: list[str] = field(default_factory=list)
    count: int = 0
    status: str = ""  # "", "accepted" or "rejected" (numbers stay put until the next suggest)

    def as_fact(self) -> Fact:
        return Fact(fact=self.fact, topic=self.topic, keywords=self.keywords)


def _clean(value: str) -> str:
    return " ".join(value.strip(" '\"").split())


def _statements(text: str) -> list[tuple[str, str, list[str]]]:
    text = re.sub(r"\*\*|__|\[\[|\]\]", "", text)  # markdown emphasis and links
    out = []
    for pattern, topic, template, value_groups in PATTERNS:
        for found in pattern.finditer(text):
            groups = [_clean(g) for g in found.groups()]
            values = [groups[i - 1] for i in value_groups]
            if any(not v or v.casefold() in NOT_A_NAME for v in values):
                continue
            if len(values[0].split()) > 5:
                continue
            fact = template.format(None, *groups)
            out.append((fact, topic, values))
    return out


def mine(store: Store, top_people: int = 3) -> list[Candidate]:
    """Candidate facts from the owner's own messages and notes, the most often stated first."""
    found: dict[str, Candidate] = {}

    def add(fact: str, topic: str, keywords: list[str], where: str) -> None:
        key = fact.casefold()
        cand = found.setdefault(key, Candidate(fact, topic, keywords))
        cand.count += 1
        if len(cand.where) < MAX_WHERE and where not in cand.where:
            cand.where.append(where)

    for text, origin in owner_texts(store):
        for fact, topic, keywords in _statements(text):
            add(fact, topic, keywords, origin)
    for note in store.notes():
        for n, line in enumerate(note.text.split("\n"), start=1):
            for fact, topic, keywords in _statements(line):
                add(fact, topic, keywords, f"{note.path}:{n}")
    candidates = sorted(found.values(), key=lambda c: (-c.count, c.fact))
    # the people the owner talks with most
    people = frequent_contacts(store, top_people)
    excluded = store.excluded_people()
    for author, n, origin in people:
        if author not in excluded:
            candidates.append(
                Candidate(
                    f"I am often in touch with {author}",
                    "people",
                    [author],
                    [f"{n} messages, e.g. {origin}"],
                    n,
                )
            )
    return candidates


def _known(facts: Facts) -> set[str]:
    return {f.fact.casefold() for f in facts.items}


@dataclass
class Suggestions:
    """The numbered candidates of the last `suggest`, and what the owner rejected."""

    path: Path
    candidates: list[Candidate] = field(default_factory=list)
    rejected: list[str] = field(default_factory=list)

    @classmethod
    def load(cls, root: Path) -> Suggestions:
        path = Path(root) / SUGGESTIONS_NAME
        if not path.exists():
            return cls(path)
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            return cls(
                path,
                [Candidate(**c) for c in data.get("candidates", [])],
                list(data.get("rejected", [])),
            )
        except (ValueError, TypeError) as exc:
            raise SelftuneError(
                f"{path}: not a suggestions file ({exc}); delete it and run `selftune facts suggest`"
            ) from exc

    def save(self) -> None:
        data = {"candidates": [asdict(c) for c in self.candidates], "rejected": self.rejected}
        write_private(self.path, json.dumps(data, ensure_ascii=False, indent=1))  # 0600

    def refresh(self, store: Store, facts: Facts) -> list[Candidate]:
        skip = _known(facts) | {r.casefold() for r in self.rejected}
        self.candidates = [c for c in mine(store) if c.fact.casefold() not in skip]
        self.save()
        return self.candidates

    def _pick(self, number: int, status: str) -> Candidate:
        if not 1 <= number <= len(self.candidates):
            raise SelftuneError(
                f"there is no suggestion {number}; `selftune facts suggest` lists "
                f"{len(self.candidates)} (numbered from 1)"
            )
        candidate = self.candidates[number - 1]
        if candidate.status:
            raise SelftuneError(f"suggestion {number} is already {candidate.status}")
        candidate.status = status
        if status == "rejected":
            self.rejected.append(candidate.fact)
        self.save()
        return candidate

    def accept(self, number: int) -> Candidate:
        """Mark suggestion `number` accepted (the caller appends it to facts.yaml)."""
        return self._pick(number, "accepted")

    def reject(self, number: int) -> Candidate:
        """Mark suggestion `number` rejected: it is never proposed again."""
        return self._pick(number, "rejected")

    def forget(self, names: set[str]) -> int:
        """Drop candidates that name any of `names` or were found in their messages."""
        folded = {n.casefold() for n in names}
        keep = [
            c
            for c in self.candidates
            if not any(k.casefold() in folded for k in c.keywords)
            and not any(n in c.fact.casefold() for n in folded)
        ]
        dropped = len(self.candidates) - len(keep)
        self.candidates = keep
        if self.path.exists():
            self.save()
        return dropped
