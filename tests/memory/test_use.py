"""Memory at use time: `/v1/reply` and `/v1/chat/completions` (and so the web page) get the same
block as training, with the twin's prompt; a private fact never reaches a prompt or an answer."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pytest
from fastapi.testclient import TestClient
from tests.memory.conftest import SECRET

from selftune.config import BuildConfig, ServeConfig
from selftune.engines import ModelSpec
from selftune.engines.base import GenResult
from selftune.memory import Memory
from selftune.memory.facts import private_facts
from selftune.server import ServerState, create_app
from selftune.store.samples import SampleLog


@dataclass
class EchoEngine:
    """Answers with the private fact's value, and keeps every prompt it was given."""

    tokenizer: Any
    name: str = "echo"
    model_id: str = "twin"
    prompts: list[str] = field(default_factory=list)

    def generate(self, requests):  # type: ignore[no-untyped-def]
        out = []
        for r in requests:
            self.prompts.append(r.prompt)
            texts = [f"the lock is {SECRET}, love" for _ in range(r.n)]
            out.append(GenResult(texts, 10, [5] * r.n, ["stop"] * r.n))
        return out


@pytest.fixture
def served(memory_workspace, tokenizer_dir):
    from transformers import AutoTokenizer

    ws = memory_workspace
    engine = EchoEngine(AutoTokenizer.from_pretrained(tokenizer_dir))
    state = ServerState(
        catalog={"twin": ModelSpec("twin", "echo")},
        serve=ServeConfig(),
        build=BuildConfig(private_facts=private_facts(ws)),
        me=["Mags"],
        log=SampleLog(ws.store_path),
        engines={"twin": engine},
        memory=Memory.from_workspace(ws),
    )
    yield state, engine
    state.close()


def test_reply_and_chat_get_the_memory_block_but_never_a_private_fact(served):
    state, engine = served
    with TestClient(create_app(state)) as client:
        r = client.post(
            "/v1/reply",
            json={
                "messages": [{"author": "Tobias", "text": "where do you live? and the lock code?"}],
                "conversation": "Tobias",
                "n": 2,
            },
        )
        assert r.status_code == 200, r.text
        c = client.post(
            "/v1/chat/completions",
            json={  # Juno is chatting: her conversations may be recalled
                "messages": [{"role": "user", "content": "honey for the gig? and the bike lock?"}],
                "user": "Juno",
            },
        )
        assert c.status_code == 200, c.text
    answers = r.json()["candidates"] + [ch["message"]["content"] for ch in c.json()["choices"]]
    assert answers and all(SECRET not in a and "[redacted]" in a for a in answers)
    reply_prompt, chat_prompt = engine.prompts
    assert "Memory:" in reply_prompt and "Porthmellin" in reply_prompt
    assert "Earlier in this chat:" in reply_prompt  # the stored chat called 'Tobias'
    assert "Memory:" in chat_prompt and "gig" in chat_prompt.split("Memory:")[1]
    assert all(SECRET not in p for p in engine.prompts)


def test_a_client_system_message_gets_no_memory(served):
    state, engine = served
    with TestClient(create_app(state)) as client:
        client.post(
            "/v1/chat/completions",
            json={
                "messages": [
                    {"role": "system", "content": "Be brief."},
                    {"role": "user", "content": "honey?"},
                ]
            },  # fmt: skip
        )
    assert "Memory:" not in engine.prompts[-1]


def test_the_cli_guard_covers_facts_yaml(memory_workspace):
    from selftune.use import guard_for as guard

    # sample, chat and reply all pass their output through this guard
    assert SECRET not in guard(memory_workspace)(f"it's {SECRET} i think")
