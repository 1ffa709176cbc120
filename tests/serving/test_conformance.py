"""OpenAI conformance as clients see it: the official `openai` client, `llm` and LangChain's
`ChatOpenAI`, unchanged, against a loopback server on each engine — transformers (the tiny random
model) and llama.cpp (the embedded model's GGUF, the engine `auto` serves; skipped where
llama-cpp-python is not installed). Every request field is honoured or refused with
`unsupported_parameter` alike on both; nothing answers 200 while ignoring it."""

from __future__ import annotations

import json
import threading
import time

import httpx
import pytest

openai = pytest.importorskip("openai")

HELLO = [{"role": "user", "content": "are you coming sunday?"}]
COMING = {"type": "object", "properties": {"coming": {"type": "boolean"}},
          "required": ["coming"], "additionalProperties": False}  # fmt: skip


@pytest.fixture
def live(live_on_each_engine):  # type: ignore[no-untyped-def]
    return live_on_each_engine


def client(live):  # type: ignore[no-untyped-def]
    return openai.OpenAI(base_url=live.url + "/v1", api_key="unused", max_retries=0)


REFUSED_CHAT = [
    (
        {"tools": [{"type": "function", "function": {"name": "f", "parameters": {}}}]},
        "tools",
    ),
    ({"tool_choice": "required"}, "tool_choice"),
    ({"modalities": ["text", "audio"]}, "modalities"),
    ({"audio": {"voice": "alloy", "format": "wav"}}, "audio"),
    ({"reasoning_effort": "high"}, "reasoning_effort"),
    ({"prediction": {"type": "content", "content": "x"}}, "prediction"),
]


@pytest.mark.parametrize(("fields", "param"), REFUSED_CHAT)
def test_chat_fields_that_cannot_be_honoured_are_refused(live, fields, param):
    with pytest.raises(openai.BadRequestError) as err:
        client(live).chat.completions.create(model="twin", messages=HELLO, max_tokens=2, **fields)
    assert err.value.body["code"] == "unsupported_parameter"
    assert err.value.body["param"] == param
    assert err.value.body["type"] == "invalid_request_error"


@pytest.mark.parametrize(
    ("messages", "param"),
    [
        (
            [
                {"role": "user", "content": "what is the weather"},
                {
                    "role": "assistant",
                    "content": None,
                    "tool_calls": [
                        {
                            "id": "c1",
                            "type": "function",
                            "function": {"name": "weather", "arguments": "{}"},
                        }
                    ],
                },
                {"role": "tool", "tool_call_id": "c1", "content": "sunny"},
            ],
            "messages.[1].tool_calls",
        ),
        (
            [
                {"role": "user", "content": "hi"},
                {"role": "tool", "tool_call_id": "c", "content": "x"},
            ],
            "messages.[1].role",
        ),
        (
            [
                {
                    "role": "user",
                    "content": [
                        {"type": "text", "text": "what is this?"},
                        {"type": "image_url", "image_url": {"url": "data:image/png;base64,AA=="}},
                    ],
                }
            ],
            "messages.[0].content.[1].type",
        ),
    ],
)
def test_messages_the_twin_cannot_read_are_refused(live, messages, param):
    with pytest.raises(openai.BadRequestError) as err:
        client(live).chat.completions.create(model="twin", messages=messages, max_tokens=2)
    assert err.value.body["code"] == "unsupported_parameter"
    assert err.value.body["param"] == param


def test_penalties_out_of_openais_range_are_refused_and_in_range_honoured(live):
    c = client(live)
    with pytest.raises(openai.BadRequestError) as err:
        c.chat.completions.create(model="twin", messages=HELLO, presence_penalty=5.0)
    assert err.value.body["param"] == "presence_penalty"
    out = c.chat.completions.create(
        model="twin", messages=HELLO, max_tokens=4, presence_penalty=1.5, frequency_penalty=1.0
    )
    assert out.choices[0].message.content is not None


def test_logit_bias_is_honoured(live, tiny_engine):
    c = client(live)
    tok = tiny_engine.tokenizer
    target = tok(" kettle", add_special_tokens=False)["input_ids"][0]
    out = c.chat.completions.create(
        model="twin", messages=HELLO, max_tokens=3, logit_bias={str(target): 100}
    )
    assert out.choices[0].message.content == " kettle" * 3
    with pytest.raises(openai.BadRequestError) as err:
        c.chat.completions.create(model="twin", messages=HELLO, logit_bias={"10000000": 5})
    assert err.value.body["param"] == "logit_bias"


def test_json_object_is_compact_json_that_ends_when_complete(live, tiny_engine):
    c = client(live)
    brace = {str(tiny_engine.tokenizer(b, add_special_tokens=False)["input_ids"][0]): 50
             for b in "{}"}  # fmt: skip
    out = c.chat.completions.create(
        model="twin", messages=HELLO, max_tokens=16, logit_bias=brace, temperature=0,
        response_format={"type": "json_object"},
    )  # fmt: skip
    assert out.choices[0].message.content == "{}"  # the object closed: nothing pads it
    assert out.choices[0].finish_reason == "stop"
    many = c.chat.completions.create(
        model="twin", messages=HELLO, max_tokens=24, n=4, seed=3, temperature=0.8,
        response_format={"type": "json_object"},
    )  # fmt: skip
    for choice in many.choices:
        text = choice.message.content
        assert text.startswith("{") and "\n" not in text and text == text.strip()
        if choice.finish_reason == "stop":
            assert isinstance(json.loads(text), dict)


def test_json_schema_is_honoured(live):
    out = client(live).chat.completions.create(
        model="twin", messages=HELLO, max_tokens=16, n=3, seed=1, temperature=1.0,
        response_format={"type": "json_schema", "json_schema": {"name": "a", "schema": COMING}},
    )  # fmt: skip
    for choice in out.choices:
        assert choice.finish_reason == "stop"
        assert set(json.loads(choice.message.content)) == {"coming"}


def test_candidate_c_is_seeded_seed_plus_c(live):
    c = client(live)
    args = dict(model="twin", prompt="Dear diary,", max_tokens=8, temperature=1.0)
    together = [ch.text for ch in c.completions.create(n=3, seed=20, **args).choices]
    alone = [c.completions.create(seed=20 + k, **args).choices[0].text for k in range(3)]
    assert together == alone


def test_chat_logprobs(live):
    out = client(live).chat.completions.create(
        model="twin", messages=HELLO, max_tokens=5, temperature=0, logprobs=True, top_logprobs=2
    )
    choice = out.choices[0]
    content = choice.logprobs.content
    assert len(content) == out.usage.completion_tokens
    assert "".join(t.token for t in content) == choice.message.content
    assert all(t.logprob <= 0 and len(t.top_logprobs) == 2 for t in content)
    assert all(t.top_logprobs[0].token == t.token for t in content)  # greedy picks the top one
    plain = client(live).chat.completions.create(model="twin", messages=HELLO, max_tokens=2)
    assert plain.choices[0].logprobs is None


def test_streamed_chat_logprobs_add_up(live):
    stream = client(live).chat.completions.create(
        model="twin", messages=HELLO, max_tokens=5, temperature=0, logprobs=True, stream=True
    )
    text, tokens = "", []
    for chunk in stream:
        for choice in chunk.choices:
            text += choice.delta.content or ""
            if choice.logprobs and choice.logprobs.content:
                tokens += [t.token for t in choice.logprobs.content]
    assert tokens and "".join(tokens) == text


def test_completion_logprobs_and_echo(live):
    c = client(live)
    out = c.completions.create(model="twin", prompt="Dear diary,", max_tokens=4, logprobs=2)
    lp = out.choices[0].logprobs
    assert "".join(lp.tokens) == out.choices[0].text
    assert len(lp.token_logprobs) == len(lp.tokens) == len(lp.top_logprobs)
    assert lp.text_offset[0] == len("Dear diary,")
    echoed = c.completions.create(
        model="twin", prompt="Dear diary,", max_tokens=4, temperature=0, echo=True
    )
    assert echoed.choices[0].text.startswith("Dear diary,")


@pytest.mark.parametrize(
    ("fields", "param"),
    [
        ({"suffix": " the end"}, "suffix"),
        ({"echo": True, "logprobs": 1}, "echo"),
    ],
)
def test_completion_fields_that_cannot_be_honoured_are_refused(live, fields, param):
    with pytest.raises(openai.BadRequestError) as err:
        client(live).completions.create(model="twin", prompt="a", max_tokens=2, **fields)
    assert err.value.body["code"] == "unsupported_parameter"
    assert err.value.body["param"] == param


def test_best_of_returns_the_most_likely_candidates(live):
    c = client(live)
    args = dict(model="twin", prompt="Dear diary,", max_tokens=6, temperature=1.0, seed=3)
    many = c.completions.create(n=4, logprobs=0, **args)

    def mean(choice) -> float:  # type: ignore[no-untyped-def]
        lp = choice.logprobs.token_logprobs
        return sum(lp) / len(lp)

    ranked = sorted(many.choices, key=mean, reverse=True)
    best = c.completions.create(n=2, best_of=4, **args)
    assert [ch.text for ch in best.choices] == [ch.text for ch in ranked[:2]]
    assert best.choices[0].logprobs is None  # not asked for
    assert best.usage.completion_tokens == many.usage.completion_tokens
    with pytest.raises(openai.BadRequestError) as err:
        c.completions.create(n=2, best_of=1, **args)
    assert err.value.body["param"] == "best_of"


def test_harmless_fields_are_accepted_and_unknown_ones_named(live):
    out = client(live).chat.completions.create(
        model="twin",
        messages=HELLO,
        max_tokens=2,
        user="u1",
        metadata={"k": "v"},
        store=False,
        parallel_tool_calls=False,
        tool_choice="none",
        response_format={"type": "text"},
        extra_body={"top_k": 5},
    )
    assert out.model_extra["selftune"]["ignored"] == ["top_k"]


def test_get_one_model_and_openais_error_for_an_unknown_one(live):
    c = client(live)
    assert c.models.retrieve("twin").id == "twin"
    with pytest.raises(openai.NotFoundError) as err:
        c.models.retrieve("gpt-4o")
    assert err.value.body["type"] == "invalid_request_error"
    assert err.value.body["code"] == "model_not_found"
    with pytest.raises(openai.NotFoundError) as err:
        c.chat.completions.create(model="gpt-4o", messages=HELLO)
    assert err.value.body["type"] == "invalid_request_error"


def test_malformed_json_is_an_invalid_request_without_a_param(live):
    r = httpx.post(
        live.url + "/v1/chat/completions",
        content=b'{"model": "twin", "messages": [',
        headers={"Content-Type": "application/json"},
    )
    assert r.status_code == 400
    error = r.json()["error"]
    assert error["param"] is None and error["type"] == "invalid_request_error"
    assert "not valid JSON" in error["message"]
    r = httpx.post(live.url + "/v1/chat/completions", json={"model": "twin", "messages": [{}]})
    assert r.json()["error"]["param"] == "messages.[0].role"


def test_same_seed_same_text_under_concurrent_load(live):
    c = client(live)
    args = dict(model="twin", messages=HELLO, max_tokens=8, temperature=1.0, seed=11)
    alone = c.chat.completions.create(**args).choices[0].message.content
    results: dict[int, str] = {}

    def call(i: int) -> None:
        if i % 2:
            results[i] = c.chat.completions.create(**args).choices[0].message.content
        else:  # others with other prompts and settings share the batches
            c.completions.create(model="twin", prompt="x" * (i + 1), max_tokens=10, temperature=0.7)

    threads = [threading.Thread(target=call, args=(i,)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert set(results.values()) == {alone}


def test_stream_sends_keep_alive_pings_while_output_is_held(make_state, monkeypatch):
    from selftune.engines.base import GenResult
    from selftune.server import create_app, sse

    from .conftest import LiveServer

    class Slow:
        name, model_id, supports = "slow", "twin", frozenset()

        def __init__(self, tokenizer):  # type: ignore[no-untyped-def]
            self.tokenizer = tokenizer

        def generate(self, requests):  # type: ignore[no-untyped-def]
            time.sleep(1.0)
            return [GenResult(["done"] * r.n, 1, [1] * r.n, ["stop"] * r.n) for r in requests]

    monkeypatch.setattr(sse, "PING_S", 0.2)
    state = make_state()
    state.engines["twin"] = Slow(state.engines["twin"].tokenizer)
    body = {"model": "twin", "messages": HELLO, "stream": True}
    with (
        LiveServer(create_app(state)) as live,
        httpx.stream("POST", live.url + "/v1/chat/completions", json=body, timeout=30) as r,
    ):
        raw = b"".join(r.iter_bytes())
    # OpenAI's framing: events end with a blank line, "\n" only (the web page splits on "\n\n")
    assert b"\r" not in raw and raw.endswith(b"data: [DONE]\n\n")
    lines = [line for line in raw.decode().split("\n") if line]
    assert any(line.startswith(":") for line in lines), "no keep-alive comment was sent"
    data = [json.loads(line[6:]) for line in lines if line.startswith("data: {")]
    assert (
        "".join(c["choices"][0]["delta"].get("content", "") for c in data if c["choices"]) == "done"
    )
    assert lines[-1] == "data: [DONE]"


def test_cors_lets_browser_clients_send_their_headers(make_state):
    from fastapi.testclient import TestClient

    from selftune.server import create_app

    app = create_app(make_state(cors_origins=["https://roamresearch.com"]))
    headers = "authorization, content-type, x-selftune-unattended, x-stainless-os, x-stainless-lang"
    r = TestClient(app, base_url="http://127.0.0.1").options(
        "/v1/chat/completions",
        headers={
            "Origin": "https://roamresearch.com",
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": headers,
        },
    )
    assert r.status_code == 200
    allowed = r.headers["access-control-allow-headers"].lower()
    assert "x-selftune-unattended" in allowed and "x-stainless-os" in allowed
    refused = TestClient(app, base_url="http://127.0.0.1").options(
        "/v1/chat/completions",
        headers={"Origin": "https://evil.example", "Access-Control-Request-Method": "POST"},
    )
    assert refused.status_code == 400


def test_llm_cli_library(live, tmp_path, monkeypatch):
    llm = pytest.importorskip("llm")
    monkeypatch.setenv("LLM_USER_PATH", str(tmp_path / "llm"))
    (tmp_path / "llm").mkdir()
    (tmp_path / "llm" / "extra-openai-models.yaml").write_text(
        f"- model_id: mytwin\n  model_name: twin\n  api_base: {live.url}/v1\n"
        "  supports_schema: true\n"  # as docs/serving.md writes the entry
    )
    model = llm.get_model("mytwin")
    response = model.prompt("are you coming sunday?", max_tokens=4, temperature=0)
    text = response.text()
    assert isinstance(text, str) and text
    again = model.prompt("are you coming sunday?", max_tokens=4, temperature=0, stream=False)
    assert again.text() == text  # streamed and not streamed agree
    # a schema asks for JSON, which both engines hold to
    answer = model.prompt("coming?", schema=COMING, max_tokens=16).text()
    assert set(json.loads(answer)) == {"coming"}


def test_langchain_chat_openai(live):
    pytest.importorskip("langchain_openai")
    from langchain_openai import ChatOpenAI
    from pydantic import BaseModel

    chat = ChatOpenAI(
        base_url=live.url + "/v1", api_key="unused", model="twin", max_tokens=4, temperature=0
    )
    reply = chat.invoke("are you coming sunday?")
    assert isinstance(reply.content, str) and reply.content
    assert "".join(c.content for c in chat.stream("are you coming sunday?")) == reply.content
    lp = chat.bind(logprobs=True).invoke("are you coming sunday?")
    assert lp.response_metadata["logprobs"]["content"]

    class Answer(BaseModel):
        coming: bool

    # structured output by JSON schema is honoured; by tools it is an error, never a silent None
    longer = ChatOpenAI(base_url=live.url + "/v1", api_key="unused", model="twin", max_tokens=16)
    answer = longer.with_structured_output(Answer, method="json_schema").invoke("are you coming?")
    assert isinstance(answer, Answer)
    with pytest.raises(openai.BadRequestError) as err:
        chat.with_structured_output(Answer, method="function_calling").invoke("are you coming?")
    assert err.value.body["code"] == "unsupported_parameter"
