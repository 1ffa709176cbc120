"""The scope rule at both ends: no training example's block and no served block quotes a
conversation that someone who sees the reply was not in; notes to self only for the owner; a
fact with `who:` only for them; the owner's own chat recalls everything."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from selftune.config import BuildConfig
from selftune.memory import Audience, Memory, build_memory
from selftune.records import Message
from selftune.twin import MEMORY_MARK

T0 = datetime(2024, 3, 1, 9, 0, tzinfo=UTC)
# each conversation has its own marker word, and who took part in it
CONVERSATIONS = {
    "c-tomas": ("Tomás", "direct", ["Tomás"], "abuela"),  # her family chat with her brother
    "c-group": ("Picnic", "group", ["Juno", "Tomás", "Ana"], "picnic"),
    "c-juno": ("Juno", "direct", ["Juno"], "gigfest"),
    "c-self": ("Mags", "direct", [], "harmonica"),  # notes to self: only Mags writes
}
LATER = T0 + timedelta(days=60)


def _msg(cid: str, author: str, text: str, when: datetime) -> Message:
    title, kind, _, _ = CONVERSATIONS[cid]
    return Message(source="whatsapp", conversation_id=cid, conversation_title=title,
                   timestamp=when, author=author, text=text, is_me=author == "Mags",
                   conversation_kind=kind)  # fmt: skip


def history() -> list[Message]:
    """Nine days; every message of a conversation names its marker and its day ("d3"), so a
    search for a day's word finds every conversation of that day."""
    out = []
    for day in range(9):
        for n, (cid, (_, _, people, mark)) in enumerate(CONVERSATIONS.items()):
            when = T0 + timedelta(days=day, hours=n)
            for i, who in enumerate([*people, "Mags"] if people else ["Mags", "Mags"]):
                text = f"{mark} d{day} the weekend for the birthday, {mark} plans {i}"
                out.append(_msg(cid, who, text, when + timedelta(minutes=i)))
            out.append(
                _msg(cid, "Mags", f"{mark} d{day} sorted, see you", when + timedelta(minutes=9))
            )
    for n, (cid, words) in enumerate(SECRETS.items()):  # one distinctive message in each
        mark = CONVERSATIONS[cid][3]
        when = T0 + timedelta(days=4, hours=n, minutes=5)
        out.append(_msg(cid, "Mags", f"{mark}: {words}", when))
    return out


SECRETS = {
    "c-tomas": "doscientos euros for the cumpleaños sorpresa",
    "c-group": "bring the wicker hamper and elderflower cordial",
    "c-juno": "the cremona strings finally arrived",
    "c-self": "present idea wrapped in tartan from lisbon",
}


FACTS = """\
facts:
  - fact: I live in Porthmellin.
    topic: home
  - fact: Tomás's birthday present is a red kite.
    topic: birthday
    keywords: [kite]
    who: [Tomás]
"""


@pytest.fixture
def scoped(tmp_path: Path):
    from selftune.memory import on_ingest
    from selftune.workspace import init_workspace

    ws = init_workspace(tmp_path / "twin", ["Mags"])
    (ws.root / "facts.yaml").write_text(FACTS, encoding="utf-8")
    with ws.open_store() as store:
        store.add_messages(history())
        store.apply_identity(["Mags"])
        on_ingest(store)
    return ws


def marks(text: str) -> set[str]:
    return {mark for _, _, _, mark in CONVERSATIONS.values() if mark in text}


def allowed_marks(people: list[str]) -> set[str]:
    """Markers of the conversations every one of `people` took part in."""
    return {
        m for _, _, members, m in CONVERSATIONS.values() if members and set(people) <= set(members)
    }


def words(text: str) -> int:
    return len(text.split())


def test_no_training_example_remembers_a_conversation_its_audience_was_not_in(scoped):
    from selftune.dataset.examples import build_dataset

    with scoped.open_store() as store:
        config = BuildConfig(dedupe="off", valid_fraction=0.2)
        data = build_dataset(store, config, "Mags", words, build_memory(scoped, store, words))
    checked = 0
    for e in data.train + data.valid:
        system = e.record["messages"][0]["content"]
        if MEMORY_MARK not in system:
            continue
        block = system.split(MEMORY_MARK)[1]
        _, _, people, own = CONVERSATIONS[e.conversation]
        if not people:
            continue  # notes to self make no training examples with an audience
        assert marks(block) <= allowed_marks(people), (e.conversation, block)
        assert "kite" not in block or people == ["Tomás"]
        checked += 1
    assert checked > 15
    juno = [e for e in data.train if e.conversation == "c-juno"]
    assert any("picnic" in e.record["messages"][0]["content"] for e in juno)  # the group is shared


def test_the_dataset_card_says_which_scope(scoped, tokenizer_dir):
    from selftune.dataset import run_build

    scoped.config.train.base = str(tokenizer_dir)
    info, dataset_id = run_build(scoped)
    card = (scoped.datasets_dir / dataset_id / "card.md").read_text()
    assert info["memory"]["scope"] == "participants" and "scope `participants`" in card


ASK = "what about the weekend for the birthday? abuela harmonica gigfest picnic kite"


def test_served_blocks_keep_to_who_sees_the_reply(scoped):
    memory = Memory.from_workspace(scoped)
    asked = [{"role": "user", "content": ASK}]
    juno = memory.for_messages(asked, "Juno", when=LATER) or ""
    tomas = memory.for_messages(asked, "Tomás", when=LATER) or ""
    nobody = memory.for_messages(asked, when=LATER) or ""
    owner = memory.for_messages(asked, when=LATER, owner=True) or ""
    assert marks(juno) and marks(juno) <= {"gigfest", "picnic"}
    assert marks(tomas) and marks(tomas) <= {"abuela", "picnic"}
    assert "kite" in tomas and "kite" not in juno and "kite" not in nobody
    assert not marks(nobody) and "From your past" not in nobody
    assert marks(owner) - {"gigfest", "picnic"}  # the owner may recall her own notes and family
    # a group reply: only what every member of the group was in
    group = memory.for_turns([("Ana", ASK)], "whatsapp", "Picnic", when=LATER) or ""
    assert marks(group) == {"picnic"}


def test_notes_to_self_only_for_the_owner(scoped):
    memory = Memory.from_workspace(scoped)
    owner_blocks = juno_blocks = ""
    for day in (10, 20, 40):
        when = T0 + timedelta(days=day)
        ask = [{"role": "user", "content": "harmonica plans?"}]
        owner_blocks += memory.for_messages(ask, when=when, owner=True) or ""
        juno_blocks += memory.for_messages(ask, "Juno", when=when) or ""
    assert "harmonica" in owner_blocks and "harmonica" not in juno_blocks


def test_scope_everyone_is_the_old_way(scoped):
    ask = [{"role": "user", "content": "and the abuela?"}]
    assert "abuela" not in (Memory.from_workspace(scoped).for_messages(ask, "Juno") or "")
    scoped.config.memory.scope = "everyone"
    assert "abuela" in (Memory.from_workspace(scoped).for_messages(ask, "Juno") or "")


def test_a_merged_spelling_is_the_same_person(scoped):
    with scoped.open_store() as store:
        store.set_person("tomas.r", alias_of="Tomás")
    block = Memory.from_workspace(scoped).for_messages([{"role": "user", "content": ASK}],
                                                        "tomas.r", when=LATER) or ""  # fmt: skip
    assert "abuela" in block and "gigfest" not in block


def test_the_checker_agrees(scoped):
    from selftune.memory.scope import outside_scope, scope_for

    with scoped.open_store() as store:
        everyone = list(CONVERSATIONS)
        assert outside_scope(store, everyone, Audience(("Juno",))) == ["c-self", "c-tomas"]
        assert outside_scope(store, everyone, Audience.the_owner()) == []
        assert outside_scope(store, everyone, Audience()) == sorted(everyone)
        scope = scope_for(store, Audience(("Juno", "Tomás")))
        assert scope.conversations == frozenset({"c-group"})


def test_the_server_asks_who_sees_the_reply(scoped, tokenizer_dir, monkeypatch):
    from fastapi.testclient import TestClient
    from tests.memory.test_use import EchoEngine
    from transformers import AutoTokenizer

    from selftune import twin
    from selftune.engines import ModelSpec
    from selftune.server import ServerState, create_app

    monkeypatch.setattr(twin, "now", lambda: LATER)
    engine = EchoEngine(AutoTokenizer.from_pretrained(tokenizer_dir))
    state = ServerState(catalog={"twin": ModelSpec("twin", "echo")}, me=["Mags"],
                        engines={"twin": engine}, memory=Memory.from_workspace(scoped))  # fmt: skip
    chat = {"messages": [{"role": "user", "content": ASK}], "max_tokens": 4}
    with TestClient(create_app(state)) as client:
        for body, headers in [
            (chat | {"user": "Juno"}, {}),
            (chat, {}),  # nobody named, no owner key: public facts only
            (chat, {"X-Selftune-Owner": "1"}),  # the owner's web page
        ]:
            r = client.post("/v1/chat/completions", json=body, headers=headers)
            assert r.status_code == 200, r.text
        r = client.post("/v1/reply", json={"messages": [{"author": "Juno", "text": ASK}], "n": 1})
        assert r.status_code == 200, r.text

    def block(prompt: str) -> str:
        return prompt.split(MEMORY_MARK)[1].split("<|im_end|>")[0] if MEMORY_MARK in prompt else ""

    juno, nobody, owner, reply = (block(p) for p in engine.prompts)
    assert marks(juno) and marks(juno) | marks(reply) <= {"gigfest", "picnic"}
    assert not marks(nobody) and "abuela" in owner
    state.close()
