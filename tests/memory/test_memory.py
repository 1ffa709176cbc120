"""The memory block: only the past, never a private fact, the same contact first, and the same
function at training time (each example its own past) and at use time."""

from __future__ import annotations

import re
from datetime import timedelta

from tests.memory.conftest import SECRET, T0, msg

from selftune.config import BuildConfig, MemoryConfig
from selftune.dataset.examples import build_dataset
from selftune.memory import Audience, Memory, Moment, build_memory, memory_block
from selftune.memory.facts import load_facts, private_facts
from selftune.memory.index import update_index
from selftune.twin import MEMORY_MARK, without_memory

MINUTE = re.compile(r"\bm(\d+)\b")


def words(text: str) -> int:
    return len(text.split())


def test_memory_never_recalls_a_message_later_than_the_one_answered(memory_workspace):
    settings = MemoryConfig(max_tokens=2000, exchanges=8, recent_turns=8)
    facts = load_facts(memory_workspace.root)
    with memory_workspace.open_store() as store:
        for minute in (0, 1, 2, 1441, 1444, 14403, 30000, 57000):
            when = T0 + timedelta(minutes=minute)
            # as the owner asks (every conversation may be recalled: the most to check)
            moment = Moment("how is the honey, any left?", when, "c-tobias", ("Tobias",),
                            audience=Audience.the_owner())  # fmt: skip
            block = memory_block(store, facts, settings, moment, "Mags")
            recalled = [int(h) for h in MINUTE.findall(block.text)]
            assert all(m < minute for m in recalled), (minute, recalled)
            assert all(m.ts < when.timestamp() for m in block.messages())
            if minute > 1440:  # there is a past, and it is used
                assert block.recent and block.exchanges


def test_each_training_example_remembers_only_its_own_past(memory_workspace):
    ws = memory_workspace
    with ws.open_store() as store:
        config = BuildConfig(private_facts=private_facts(ws), dedupe="off", valid_fraction=0.2)
        data = build_dataset(store, config, "Mags", words, build_memory(ws, store, words))
    chats = [e for e in data.train + data.valid if "messages" in e.record]
    with_memory = 0
    for e in chats:
        system = e.record["messages"][0]["content"]
        own = [int(h) for m in e.record["messages"][1:] for h in MINUTE.findall(m["content"])]
        if MEMORY_MARK in system:
            with_memory += 1
            recalled = [int(h) for h in MINUTE.findall(system.split(MEMORY_MARK)[1])]
            assert max(recalled) < min(own), (recalled, own)
    assert with_memory >= len(chats) - 2  # all but the very first sessions remember something


def test_the_same_contact_comes_first(memory_workspace):
    settings = MemoryConfig(exchanges=2, recent_turns=0)
    with memory_workspace.open_store() as store:
        # "harvest" is in 40 of Tobias's messages and 10 of Juno's
        moment = Moment("how was the harvest?", T0 + timedelta(days=30), None, ("Juno",))
        block = memory_block(store, load_facts(memory_workspace.root), settings, moment, "Mags")
    assert block.exchanges
    assert all(h.conversation_id == "c-juno" for h in block.exchanges[0])


def test_private_facts_never_reach_a_prompt_or_a_dataset(memory_workspace):
    ws = memory_workspace
    memory = Memory.from_workspace(ws)
    asked = [
        "what's the code of your bike lock again?",
        f"is it {SECRET}? honey",
        "where do you live these days?",
    ]
    blocks = [memory.for_turns([("Tobias", q)], "whatsapp", "Tobias") or "" for q in asked]
    assert not any(SECRET in b for b in blocks)
    assert "Porthmellin" in blocks[2]  # the public fact the question touches
    assert "bike lock" not in blocks[0]  # neither the fact nor the message that holds it
    with ws.open_store() as store:
        config = BuildConfig(private_facts=private_facts(ws), dedupe="off")
        data = build_dataset(store, config, "Mags", words, build_memory(ws, store, words))
    systems = [e.record["messages"][0]["content"] for e in data.train + data.valid]
    assert any(MEMORY_MARK in s for s in systems)
    assert SECRET not in repr([e.record for e in data.train + data.valid])


def test_memory_switched_off_leaves_the_prompt_as_it_was(memory_workspace):
    ws = memory_workspace
    ws.config.memory.enabled = False
    assert build_memory(ws, None) is None  # type: ignore[arg-type]
    assert Memory.from_workspace(ws).for_turns([("Tobias", "honey?")], "whatsapp", "Tobias") is None
    with ws.open_store() as store:
        data = build_dataset(store, BuildConfig(dedupe="off"), "Mags", words, None)
    systems = {e.record["messages"][0]["content"] for e in data.train if "messages" in e.record}
    assert systems == {without_memory(s) for s in systems}


def test_the_block_keeps_to_its_token_budget(memory_workspace):
    with memory_workspace.open_store() as store:
        for budget in (16, 40, 120):
            settings = MemoryConfig(max_tokens=budget, exchanges=10, recent_turns=10)
            moment = Moment("where do you live? honey", T0 + timedelta(days=35), "c-tobias")
            block = memory_block(store, load_facts(memory_workspace.root), settings, moment, "Mags",
                                 count_tokens=words)  # fmt: skip
            assert words(block.text) <= budget + 6  # + the section headers


def test_the_index_follows_the_store_incrementally(memory_workspace):
    with memory_workspace.open_store() as store:
        assert update_index(store) == 0  # ingest already indexed everything
        store.add_messages([msg("Tobias", "m90000 brand new honey question", 90000)])
        assert update_index(store) == 1
        assert update_index(store) == 0
        moment = Moment("brand new question", T0 + timedelta(minutes=90001), "c-tobias")
        block = memory_block(store, load_facts(memory_workspace.root), MemoryConfig(), moment, "M")
    assert "m90000" in block.text
