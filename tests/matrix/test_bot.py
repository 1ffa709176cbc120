"""`selftune matrix bot` against a real Synapse: drafts reach the approvals room only for allowed
rooms, nothing is sent until the owner answers, the chosen draft is sent as the owner, every
answer is logged for distill, and a restart sends nothing twice. The model is a stub engine
(the prompt, memory, guard and sample log are the real ones); the Matrix side is all real."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from typing import Any

import pytest
from tests.matrix.conftest import logged_in_workspace

from selftune.engines.base import GenResult
from selftune.matrix.bot import Bot
from selftune.matrix.client import MatrixClient
from selftune.matrix.drafting import Drafter
from selftune.store.samples import SampleLog


@dataclass
class StubEngine:
    """Numbered drafts naming the platform the prompt says; keeps every prompt."""

    tokenizer: Any
    model_id: str = "stub"
    prompts: list[str] = field(default_factory=list)

    def generate(self, requests):  # type: ignore[no-untyped-def]
        out = []
        for r in requests:
            self.prompts.append(r.prompt)
            where = "WhatsApp" if "WhatsApp" in r.prompt else "elsewhere"
            texts = [f"draft {i + 1} on {where}" for i in range(r.n)]
            out.append(GenResult(texts, 5, [5] * r.n, ["stop"] * r.n))
        return out


@pytest.fixture(scope="module")
def people(homeserver, make_user):
    owner = make_user("bot_owner", "Mags")
    carla = make_user("whatsapp_447700900999", "Carla (WA)")
    dave = make_user("bot_dave", "Dave")
    allowed = carla.create_room([owner.user_id], direct=True)
    owner.join(allowed)
    carla.put_state(allowed, "m.bridge", "whatsapp", {"protocol": {"id": "whatsapp"}})
    other = dave.create_room([owner.user_id], direct=True)
    owner.join(other)
    secret = dave.create_room([owner.user_id], name="Encrypted")
    owner.join(secret)
    dave.put_state(secret, "m.room.encryption", "", {"algorithm": "m.megolm.v1.aes-sha2"})
    return {
        "owner": owner,
        "carla": carla,
        "dave": dave,
        "allowed": allowed,
        "other": other,
        "encrypted": secret,
    }


@pytest.fixture
def bot_ws(tmp_path, homeserver, people, tokenizer_dir):
    from transformers import AutoTokenizer

    ws = logged_in_workspace(tmp_path / "twin", homeserver, people["owner"], ["Mags"])
    ws.config.matrix.rooms = [people["allowed"], people["encrypted"]]
    ws.config.matrix.min_seconds_between_drafts = 0
    engine = StubEngine(AutoTokenizer.from_pretrained(tokenizer_dir))
    return ws, engine


def _texts(user, room, sender=None):
    events = [e for e in reversed(user.messages(room)) if e["type"] == "m.room.message"]
    return [e["content"]["body"] for e in events if sender is None or e["sender"] == sender]


def test_drafts_wait_for_the_owner_and_send_the_chosen_one(bot_ws, people):
    ws, engine = bot_ws
    owner, carla, dave = people["owner"], people["carla"], people["dave"]
    allowed, other = people["allowed"], people["other"]
    lines: list[str] = []

    async def scenario() -> dict[str, Any]:
        bot = Bot(ws, Drafter(ws, engine=engine), echo=lines.append)
        async with MatrixClient(bot.account) as client:
            await bot.start(client)
            approvals = bot.state.approvals_room
            carla.say(allowed, "are you coming tonight?")
            dave.say(other, "hello? anyone?")
            dave.send(
                people["encrypted"],
                {"algorithm": "m.megolm.v1.aes-sha2", "ciphertext": "AwgA", "session_id": "s"},
                event_type="m.room.encrypted",
            )
            await bot.step(client, timeout_ms=0)
            drafts_notice = _texts(owner, approvals)[-1]
            sent_before = _texts(owner, allowed, owner.user_id)
            owner.say(approvals, "2")
            await bot.step(client, timeout_ms=0)
        return {
            "approvals": approvals,
            "notice": drafts_notice,
            "before": sent_before,
            "pending": dict(bot.state.pending),
        }

    seen = asyncio.run(scenario())
    notice = seen["notice"]
    assert "Carla in Carla (WhatsApp): are you coming tonight?" in notice
    assert "1. draft 1 on WhatsApp" in notice and "3. draft 3 on WhatsApp" in notice
    assert seen["before"] == []  # nothing was sent before the owner answered
    assert _texts(owner, allowed, owner.user_id) == ["draft 2 on WhatsApp"]
    (sent,) = [
        e
        for e in owner.messages(allowed)
        if e["sender"] == owner.user_id and e["type"] == "m.room.message"
    ]
    assert sent["content"]["io.selftune.drafted"] is True  # ingest can tell it was a draft
    assert seen["pending"] == {}
    assert any("end-to-end encrypted" in line for line in lines)  # skipped, and said so
    # only the allowed room was drafted for: one prompt, naming WhatsApp, quoting Carla
    assert len(engine.prompts) == 1 and "are you coming tonight?" in engine.prompts[0]
    assert "hello? anyone?" not in " ".join(_texts(owner, seen["approvals"]))
    log = SampleLog(ws.store_path)
    (sample,) = log.reviewed()
    assert sample["endpoint"] == "matrix-bot" and sample["picked"] == 1
    assert sample["candidates"][1] == "draft 2 on WhatsApp"

    # a restart resumes from the saved state: nothing is drafted or sent again
    async def restart() -> None:
        bot = Bot(ws, Drafter(ws, engine=engine), echo=lines.append)
        async with MatrixClient(bot.account) as client:
            await bot.start(client)
            await bot.step(client, timeout_ms=0)

    asyncio.run(restart())
    assert _texts(owner, allowed, owner.user_id) == ["draft 2 on WhatsApp"]
    assert len(engine.prompts) == 1


def test_reject_edit_supersede_expire_and_excluded(bot_ws, people):
    ws, engine = bot_ws
    owner, carla, allowed = people["owner"], people["carla"], people["allowed"]
    log = SampleLog(ws.store_path)

    async def scenario() -> None:
        bot = Bot(ws, Drafter(ws, engine=engine), echo=lambda line: None)
        async with MatrixClient(bot.account) as client:
            await bot.start(client)
            approvals = bot.state.approvals_room

            async def step() -> None:
                await bot.step(client, timeout_ms=0)

            carla.say(allowed, "what time?")
            await step()
            carla.say(allowed, "and where?")  # supersedes the drafts for "what time?"
            await step()
            assert "replaced" in " ".join(_texts(owner, approvals)[-3:])
            assert len(bot.state.pending) == 1
            owner.say(approvals, "r")
            await step()
            assert bot.state.pending == {}
            carla.say(allowed, "ok?")
            await step()
            owner.say(approvals, "e at the bar, 8")
            await step()
            assert _texts(owner, allowed, owner.user_id)[-1] == "at the bar, 8"
            # drafts expire unanswered
            ws.config.matrix.expire_minutes = 0.001
            carla.say(allowed, "still there?")
            await step()
            time.sleep(0.2)
            await step()
            assert "expired" in _texts(owner, approvals)[-1]
            owner.say(approvals, "1")
            await step()
            assert _texts(owner, allowed, owner.user_id)[-1] == "at the bar, 8"
            # an excluded contact is never drafted for
            ws.config.matrix.expire_minutes = 60
            with ws.open_store() as store:
                store.set_person("Carla", excluded=True)
            prompts = len(engine.prompts)
            carla.say(allowed, "hello again")
            await step()
            assert len(engine.prompts) == prompts and bot.state.pending == {}

    asyncio.run(scenario())
    samples = {s["id"]: s for s in log.reviewed()}
    rejected = [s for s in samples.values() if s["ratings"] and s["picked"] is None]
    edited = [s for s in samples.values() if s["edited"]]
    assert len(rejected) == 1 and {r["rating"] for r in rejected[0]["ratings"]} == {-1}
    assert len(edited) == 1 and edited[0]["edited"] == "at the bar, 8"


def test_a_contact_never_gets_another_conversation_quoted(
    tmp_path, homeserver, make_user, tokenizer_dir
):
    """The boundaries rule through the bot: Bob asks about what Alice told the owner alone;
    the drafts' prompt (memory block included) must not carry Alice's words to Bob."""
    from click.testing import CliRunner
    from transformers import AutoTokenizer

    from selftune.cli import cli

    owner = make_user("bounds_owner", "Mags")
    alice = make_user("bounds_alice", "Alice")
    bob = make_user("bounds_bob", "Bob")
    secret_room = alice.create_room([owner.user_id], direct=True)
    owner.join(secret_room)
    alice.say(secret_room, "the surprise party for Bob is on Saturday at the boathouse")
    owner.say(secret_room, "perfect, I will keep Bob busy until eight at the boathouse")
    bob_room = bob.create_room([owner.user_id], direct=True)
    owner.join(bob_room)
    ws = logged_in_workspace(tmp_path / "twin", homeserver, owner, ["Mags"])
    ingested = CliRunner().invoke(cli, ["ingest", "matrix", "-w", str(ws.root)])
    assert ingested.exit_code == 0, ingested.output
    ws.config.matrix.rooms = [bob_room]
    ws.config.matrix.min_seconds_between_drafts = 0
    engine = StubEngine(AutoTokenizer.from_pretrained(tokenizer_dir))

    async def scenario() -> None:
        bot = Bot(ws, Drafter(ws, engine=engine), echo=lambda line: None)
        async with MatrixClient(bot.account) as client:
            await bot.start(client)
            bob.say(bob_room, "what are you doing on Saturday? the boathouse party?")
            await bot.step(client, timeout_ms=0)

    asyncio.run(scenario())
    assert len(engine.prompts) == 1
    assert "keep Bob busy" not in engine.prompts[0]
    assert "surprise party for Bob" not in engine.prompts[0]


def test_an_approvals_room_someone_else_is_in_is_refused(bot_ws, people):
    from selftune.errors import SelftuneError

    ws, engine = bot_ws
    shared = people["owner"].create_room([people["dave"].user_id], name="not private")
    ws.config.matrix.approvals_room = shared

    async def start() -> None:
        bot = Bot(ws, Drafter(ws, engine=engine), echo=lambda line: None)
        async with MatrixClient(bot.account) as client:
            await bot.start(client)

    with pytest.raises(SelftuneError, match="has other members"):
        asyncio.run(start())
