"""Consent: `selftune memory forget CONTACT` takes a contact out of the twin's memory and out of
every future dataset.

The contact (with their aliases) is marked excluded in the store's people table, which the build
already honours (no conversation they wrote in is trained on) and the memory honours too (no
such conversation is indexed or recalled, even after a new import). Their conversations leave
the search index, suggested facts that name them are dropped, and logged samples whose prompt
quotes them are deleted. The raw messages stay in the store, so the exclusion keeps holding when
the same export is imported again; existing datasets and runs are listed for the owner to delete.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from selftune.artefacts import Artefacts
from selftune.errors import SelftuneError
from selftune.memory.index import excluded_conversations, update_index
from selftune.memory.suggest import Suggestions
from selftune.store import Store
from selftune.store.memory_index import unindex_conversations
from selftune.store.samples import SampleLog


@dataclass
class Forgotten:
    name: str
    aliases: list[str] = field(default_factory=list)
    conversations: int = 0
    unindexed: int = 0
    suggestions: int = 0
    samples: int = 0
    datasets: list[str] = field(default_factory=list)


def find_person(store: Store, contact: str) -> dict[str, Any]:
    """The person called `contact` (any case, or one of their aliases)."""
    folded = contact.strip().casefold()
    for person in store.people():
        names = [person["name"], *person["aliases"]]
        if any(n.casefold() == folded for n in names):
            return person
    known = [p["name"] for p in store.people() if not p["is_me"]][:12]
    raise SelftuneError(
        f"nobody called {contact!r} is in the store; `selftune people` lists everyone"
        + (f" (e.g. {', '.join(known)})" if known else "")
    )


def forget_contact(store: Store, root: Path, contact: str) -> Forgotten:
    """Take `contact` out of memory and future datasets (see the module docstring)."""
    person = find_person(store, contact)
    if person["is_me"]:
        raise SelftuneError(f"{person['name']!r} is you; only a contact can be forgotten")
    names = [person["name"], *person["aliases"]]
    update_index(store)  # so every conversation they wrote in is known to memory_contacts
    before = excluded_conversations(store)
    for name in names:
        store.set_person(name, excluded=True)
    conversations = excluded_conversations(store) - before
    out = Forgotten(person["name"], person["aliases"], len(conversations))
    out.unindexed = unindex_conversations(store, excluded_conversations(store))
    out.suggestions = Suggestions.load(root).forget(set(names))
    out.samples = SampleLog(store.path).forget_mentioning(set(names))
    out.datasets = _datasets_with(root, names)
    return out


def _datasets_with(root: Path, names: list[str]) -> list[str]:
    """Existing datasets whose files mention one of `names` (for the owner to delete)."""
    folded = [n.casefold() for n in names if n]
    found = []
    artefacts = Artefacts(Path(root))
    # with any left by a build killed while writing (datasets/.staging/<id>)
    for dataset in artefacts.dataset_folders(staging=True):
        folder = dataset.path
        for part in ("train.jsonl", "valid.jsonl"):
            path = folder / part
            if path.exists() and any(
                n in path.read_text(encoding="utf-8").casefold() for n in folded
            ):
                found.append(str(folder.relative_to(artefacts.datasets_dir)))
                break
    return found
