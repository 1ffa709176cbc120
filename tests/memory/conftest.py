"""Memory fixtures: a workspace whose store is written by hand (times, contacts, words chosen so
that what memory may and may not recall is known), and facts.yaml with a private fact."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from selftune.records import Message

T0 = datetime(2024, 3, 1, 9, 0, tzinfo=UTC)
SECRET = "4711"  # a private fact's keyword: never in a prompt, a dataset or an answer

FACTS = f"""\
facts:
  - fact: I live in Porthmellin, above the old chapel.
    topic: home
    keywords: [Porthmellin]
  - fact: My dog is called Biscuit.
    topic: pet
    keywords: [Biscuit]
  - fact: The code of my bike lock is {SECRET}.
    topic: bike
    keywords: ["{SECRET}"]
    private: true
"""


def msg(author: str, text: str, minutes: float, conversation: str = "c-tobias",
        title: str = "Tobias") -> Message:  # fmt: skip
    return Message(
        source="whatsapp",
        conversation_id=conversation,
        conversation_title=title,
        timestamp=T0 + timedelta(minutes=minutes),
        author=author,
        text=text,
        is_me=author == "Mags",
        conversation_kind="direct",
    )


def history() -> list[Message]:
    """Two direct chats over 40 days, a session a day in each; every message says 'honey' and
    the minute it was sent ("m1445")."""
    out = []
    for day in range(40):
        t = day * 1440
        out += [
            msg("Tobias", f"m{t} how is the honey harvest going?", t),
            msg("Mags", f"m{t + 1} honey is grand, the bees are busy", t + 1),
            msg("Tobias", f"m{t + 2} lovely, save me a jar", t + 2),
            msg("Mags", f"m{t + 3} always x", t + 3),
            msg(
                "Juno",
                f"m{t + 4} any honey left for the gig?" + " the harvest?" * (day % 4 == 0),
                t + 4,
                "c-juno",
                "Juno",
            ),  # fmt: skip
            msg("Mags", f"m{t + 5} a jar of honey for you juno", t + 5, "c-juno", "Juno"),
        ]
    out.append(msg("Tobias", f"my old bike lock was {SECRET}, honey", 300))
    return out


@pytest.fixture
def memory_workspace(tmp_path: Path):
    from selftune.ingest.importer import ingest_paths  # noqa: F401  (the index hook lives there)
    from selftune.memory import on_ingest
    from selftune.workspace import init_workspace

    ws = init_workspace(tmp_path / "twin", ["Mags"])
    (ws.root / "facts.yaml").write_text(FACTS, encoding="utf-8")
    with ws.open_store() as store:
        store.add_messages(history())
        store.apply_identity(["Mags"])
        on_ingest(store)
    return ws
