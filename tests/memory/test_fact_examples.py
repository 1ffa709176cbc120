"""Training examples where the owner's own words state or rely on a fact carry that fact in their
memory block (so the twin learns to copy it from there); private facts never do."""

from __future__ import annotations

from tests.memory.conftest import SECRET, msg

from selftune.config import BuildConfig, MemoryConfig
from selftune.dataset.examples import build_dataset
from selftune.memory import Moment, build_memory, memory_block, on_ingest
from selftune.memory.block import FACTS_HEADER, fact_line
from selftune.memory.facts import Fact, add_fact, load_facts, private_facts, second_person
from selftune.twin import MEMORY_MARK

DAY = 1440


def words(text: str) -> int:
    return len(text.split())


def stating(ws) -> None:
    """Mags states where she lives, where she grew up (a fact typed by hand, no keywords) and
    her bike lock's code (a private fact), each in reply to a question that names none of it."""
    with ws.open_store() as store:
        store.add_messages(
            [
                msg("Tobias", "so are you still up the hill?", 45 * DAY),
                msg("Mags", "yep, still in porthmellin above the chapel", 45 * DAY + 1),
                msg("Tobias", "you were a city kid once though", 46 * DAY),
                msg("Mags", "ha, penzance born and bred", 46 * DAY + 1),
                msg("Tobias", "what was that number again?", 47 * DAY),
                msg("Mags", f"it's {SECRET}, don't tell", 47 * DAY + 1),
            ]
        )
        store.apply_identity(["Mags"])
        on_ingest(store)
    add_fact(ws.root, Fact(fact="I grew up in Penzance."))


def systems_by_reply(data) -> dict[str, str]:
    out = {}
    for e in data.train + data.valid:
        if "messages" in e.record:
            mine = " ".join(m["content"] for m in e.record["messages"] if m["role"] == "assistant")
            out[mine] = e.record["messages"][0]["content"]
    return out


def test_examples_whose_owner_words_state_a_fact_carry_it(memory_workspace):
    ws = memory_workspace
    stating(ws)
    with ws.open_store() as store:
        config = BuildConfig(private_facts=private_facts(ws), dedupe="off", valid_fraction=0.2)
        data = build_dataset(store, config, "Mags", words, build_memory(ws, store, words))
    systems = systems_by_reply(data)
    home = next(s for reply, s in systems.items() if "porthmellin" in reply)
    grew = next(s for reply, s in systems.items() if "penzance" in reply)
    assert "- You live in Porthmellin, above the old chapel." in home.split(MEMORY_MARK)[1]
    assert "- You grew up in Penzance." in grew.split(MEMORY_MARK)[1]  # typed by hand
    # facts come last in the block, right before the conversation
    tail = grew.split(FACTS_HEADER)[1].strip().split("\n")
    assert all(line.startswith("- You") for line in tail) and "Earlier in" in grew
    assert grew.index("Earlier in") < grew.index(FACTS_HEADER)
    # an example that states no fact and asks for none carries none
    honey = next(s for reply, s in systems.items() if "bees are busy" in reply)
    assert FACTS_HEADER not in honey
    # private facts: not in any block, not in any example, even where the owner said it
    assert SECRET not in repr([e.record for e in data.train + data.valid])
    assert "bike lock" not in repr([e.record for e in data.train + data.valid])


def test_fact_values_and_second_person():
    assert Fact(fact="I live in Lyon").values() == ["Lyon"]
    assert Fact(fact="My brother is called Tom, he is 12").values() == ["Tom", "12"]
    assert Fact(fact="I keep bees", keywords=["bees"]).values() == ["bees"]
    assert second_person("I build violins in my workshop; I am on no. 4 now.") == (
        "You build violins in your workshop; you are on no. 4 now."
    )
    assert fact_line(Fact(fact="My dog is called Biscuit.")) == "- Your dog is called Biscuit."


def test_a_private_fact_the_owner_states_is_never_placed(memory_workspace):
    ws = memory_workspace
    facts = load_facts(ws.root)
    with ws.open_store() as store:
        moment = Moment("what was it again?", msg("x", "", 50 * DAY).timestamp, said=SECRET)
        block = memory_block(store, facts, MemoryConfig(), moment, "Mags")
    assert SECRET not in block.text and not block.facts
    assert [f.private for f in facts.stated_in(f"{SECRET} porthmellin")] == [False]


def test_facts_first_when_asked(memory_workspace):
    ws = memory_workspace
    with ws.open_store() as store:
        moment = Moment("where do you live?", msg("x", "", 50 * DAY).timestamp, "c-tobias")
        first = memory_block(store, load_facts(ws.root), MemoryConfig(facts_place="first"),
                             moment, "Mags")  # fmt: skip
    assert first.text.startswith(FACTS_HEADER + "\n- You live in Porthmellin")
