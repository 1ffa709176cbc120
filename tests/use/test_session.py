"""`TwinSession`: every use of the twin gets the twin's prompt and memory block, guarded output,
ranked candidates and a logged sample; `--show-prompt` shows the exact prompt."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pytest
from click.testing import CliRunner
from tests.memory.conftest import SECRET, memory_workspace  # noqa: F401  (the fixture)

from selftune.cli import cli
from selftune.engines.base import GenResult
from selftune.use import TwinSession


@dataclass
class LeakyEngine:
    """Answers with the private fact (candidates of growing length); keeps every prompt."""

    tokenizer: Any
    name: str = "leaky"
    model_id: str = "twin"
    prompts: list[str] = field(default_factory=list)

    def generate(self, requests):  # type: ignore[no-untyped-def]
        out = []
        for r in requests:
            self.prompts.append(r.prompt)
            texts = [f"the lock is {SECRET}" + " yes" * i for i in range(r.n)]
            for i, text in enumerate(texts):
                if r.on_text:
                    r.on_text(i, text)
            out.append(GenResult(texts, 10, [5] * r.n, ["stop"] * r.n))
        return out


class Longest:
    """A stand-in ranker: the longest candidate is the owner's pick."""

    def scores(self, texts: list[str]) -> list[float]:
        return [float(len(t)) for t in texts]

    def order(self, texts: list[str]) -> list[str]:
        return sorted(texts, key=len, reverse=True)


@pytest.fixture
def tiny_ws(memory_workspace, tiny_model_dir):  # noqa: F811
    ws = memory_workspace
    text = ws.config_path.read_text().replace("base: embedded", f"base: {tiny_model_dir}")
    ws.config_path.write_text(text)
    from selftune.workspace import find_workspace

    return find_workspace(ws.root)


@pytest.fixture
def leaky(memory_workspace, tokenizer_dir):  # noqa: F811
    from transformers import AutoTokenizer

    engine = LeakyEngine(AutoTokenizer.from_pretrained(tokenizer_dir))
    return TwinSession.open(memory_workspace, engine=engine), engine


def test_sample_is_guarded_ranked_and_logged(leaky):
    session, _ = leaky
    session.ranker = Longest()
    out = session.sample("tell me the lock code", n=3)
    assert len(out.texts) == 3 and all(SECRET not in t and "[redacted]" in t for t in out.texts)
    assert out.texts == sorted(out.texts, key=len, reverse=True)
    assert {"redacted", "ranked"} <= set(out.flags)
    logged = session.log.get(out.sample_id)
    assert logged["candidates"] == out.texts and logged["endpoint"] == "cli-sample"


def test_reply_prompt_holds_the_system_prompt_and_memory_but_no_private_fact(leaky):
    session, engine = leaky
    shown: list[str] = []
    session.show_prompt = shown.append
    out = session.reply([("Tobias", "where do you live? and the lock?")], conversation="Tobias")
    assert shown == engine.prompts  # exactly what the model got
    prompt = shown[0]
    assert session.twin.system(conversation="Tobias").split(" It is")[0] in prompt
    assert "Memory:" in prompt and "Porthmellin" in prompt and SECRET not in prompt
    assert all(SECRET not in t for t in out.texts)
    assert session.log.get(out.sample_id)["candidates"] == out.texts


def test_chat_streams_the_guarded_reply_and_logs_the_conversation(leaky):
    session, engine = leaky
    streamed: list[str] = []
    messages = [{"role": "user", "content": "honey for the gig? and the bike lock?"}]
    out = session.chat(messages, stream=streamed.append)
    assert "".join(streamed) == out.texts[0] and SECRET not in out.texts[0]
    assert "Memory:" in engine.prompts[0]
    logged = session.log.get(out.sample_id)
    assert logged["prompt"][0]["role"] == "system" and logged["prompt"][-1] == messages[-1]


def test_a_system_message_of_the_callers_own_gets_no_memory(leaky):
    session, _ = leaky
    asked = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "honey?"}]
    assert session.chat_messages(asked) == asked


def test_the_tiny_model_samples_and_replies_through_the_session(tiny_ws):
    session = TwinSession.open(tiny_ws, engine="transformers", base_only=True, rank=False)
    out = session.sample("Dear diary,", n=2, max_tokens=3, seed=1)
    assert len(out.texts) == 2 and out.sample_id is not None and out.prompt == "Dear diary,"
    drafts = session.reply([("Tobias", "coming sunday?")], n=2, max_tokens=3)
    assert len(drafts.texts) == 2 and drafts.sample_id == out.sample_id + 1
    assert drafts.prompt.startswith(session.render(session.reply_messages([("Tobias", "x")]))[:40])


def _cli(ws, *args: str, input: str | None = None):  # type: ignore[no-untyped-def]
    where = ["--workspace", str(ws.root), "--base-only", "--engine", "transformers"]
    result = CliRunner().invoke(cli, [*args, *where], input=input)
    assert result.exit_code == 0, result.output
    return result


def test_show_prompt_prints_the_exact_prompt_to_stderr(tiny_ws):
    twin_prompt = TwinSession.for_workspace(tiny_ws).twin.system().split(" It is")[0]
    out = _cli(tiny_ws, "sample", "honey for the gig?", "--chat", "-n", "1", "--max-tokens", "2",
               "--show-prompt", "--json")  # fmt: skip
    assert "--- prompt ---" in out.stderr and "--- prompt ---" not in out.stdout
    assert twin_prompt in out.stderr and "Memory:" in out.stderr and "gig?" in out.stderr
    out = _cli(tiny_ws, "reply", "-", "-n", "1", "--max-tokens", "2", "--show-prompt",
               "--conversation", "Tobias", input="Tobias: where do you live?\n")  # fmt: skip
    assert (
        twin_prompt.replace("a chat", "Tobias") in out.stderr
        and "Porthmellin" in out.stderr
        and SECRET not in out.stderr
    )
    out = _cli(tiny_ws, "chat", "--max-tokens", "2", "--show-prompt", "--no-memory",
               input="first line\nsecond line\n/quit\n")  # fmt: skip
    assert out.stderr.count("--- prompt ---") == 2 and "Memory:" not in out.stderr
    last = out.stderr.rsplit("--- prompt ---", 1)[1]
    assert "first line" in last and "second line" in last  # each turn's whole prompt
    plain = _cli(tiny_ws, "sample", "Dear diary,", "-n", "1", "--max-tokens", "2")
    assert "--- prompt ---" not in plain.stderr
