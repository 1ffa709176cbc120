"""The official `openai` client, unchanged, against a server on loopback, on each engine
(transformers on the tiny random model, llama.cpp on the embedded model's GGUF)."""

from __future__ import annotations

import json
import sqlite3

import pytest

openai = pytest.importorskip("openai")


@pytest.fixture
def live(live_on_each_engine):  # type: ignore[no-untyped-def]
    return live_on_each_engine


def client(live):  # type: ignore[no-untyped-def]
    return openai.OpenAI(base_url=live.url + "/v1", api_key="unused", max_retries=0)


def test_models_lists_the_twin(live):
    ids = [m.id for m in client(live).models.list()]
    assert "twin" in ids


def test_chat_completion_with_n_and_usage(live):
    out = client(live).chat.completions.create(
        model="twin",
        messages=[{"role": "user", "content": "are you coming sunday?"}],
        n=3,
        max_tokens=6,
        temperature=0.9,
        seed=1,
    )
    assert [c.index for c in out.choices] == [0, 1, 2]
    assert all(c.message.role == "assistant" for c in out.choices)
    assert out.usage.prompt_tokens > 0
    assert 0 < out.usage.completion_tokens <= 3 * 6
    assert out.usage.total_tokens == out.usage.prompt_tokens + out.usage.completion_tokens


def test_seed_makes_samples_repeatable(live):
    args = dict(model="twin", prompt="Dear diary,", n=2, max_tokens=8, temperature=1.0, seed=7)
    first = [c.text for c in client(live).completions.create(**args).choices]
    second = [c.text for c in client(live).completions.create(**args).choices]
    assert first == second


def test_streaming_chat_with_n_matches_the_final_text(live):
    stream = client(live).chat.completions.create(
        model="twin",
        messages=[{"role": "user", "content": "hello"}],
        n=2,
        max_tokens=8,
        temperature=0,
        stream=True,
        stream_options={"include_usage": True},
    )
    texts, finished, usage = {0: "", 1: ""}, set(), None
    for chunk in stream:
        if chunk.usage:
            usage = chunk.usage
        for choice in chunk.choices:
            texts[choice.index] += choice.delta.content or ""
            if choice.finish_reason:
                finished.add(choice.index)
    assert finished == {0, 1}
    assert usage is not None and usage.completion_tokens > 0
    # greedy: both candidates are the same, and the same as a non-streamed request
    plain = client(live).chat.completions.create(
        model="twin", messages=[{"role": "user", "content": "hello"}], max_tokens=8, temperature=0
    )
    assert texts[0] == texts[1] == plain.choices[0].message.content


def test_raw_sse_ends_with_done(live):
    import httpx

    body = {"model": "twin", "prompt": "Once", "max_tokens": 4, "stream": True, "n": 2}
    with httpx.stream("POST", live.url + "/v1/completions", json=body, timeout=60) as r:
        assert r.status_code == 200
        assert r.headers["content-type"].startswith("text/event-stream")
        lines = [line for line in r.iter_lines() if line]
    assert lines[-1] == "data: [DONE]"
    chunks = [json.loads(line[6:]) for line in lines[:-1]]
    assert {c["choices"][0]["index"] for c in chunks if c["choices"]} == {0, 1}


def test_stop_sequence_cuts_the_text(live):
    base = client(live).completions.create(model="twin", prompt="a", max_tokens=12, temperature=0)
    text = base.choices[0].text
    assert len(text) > 2, "the tiny model produced too little text to test stop"
    stop = text[len(text) // 2 : len(text) // 2 + 2]
    cut = client(live).completions.create(
        model="twin", prompt="a", max_tokens=12, temperature=0, stop=[stop]
    )
    assert cut.choices[0].text == text[: text.find(stop)]
    assert cut.choices[0].finish_reason == "stop"


def test_errors_have_openai_shape(live):
    c = client(live)
    with pytest.raises(openai.NotFoundError) as err:
        c.chat.completions.create(model="nope", messages=[{"role": "user", "content": "x"}])
    assert err.value.body["code"] == "model_not_found"
    with pytest.raises(openai.BadRequestError) as err:
        c.completions.create(model="twin", prompt="x", n=999)
    assert err.value.body["param"] == "n"
    with pytest.raises(openai.BadRequestError):
        c.chat.completions.create(model="twin", messages=[])


def test_every_request_is_logged_without_console_text(live, tmp_path, capfd):
    secret = "zebra-umbrella-4471"
    out = client(live).chat.completions.create(
        model="twin", messages=[{"role": "user", "content": secret}], n=2, max_tokens=4
    )
    db = sqlite3.connect(tmp_path / "store.sqlite")
    prompt, candidates = db.execute(
        "SELECT prompt, candidates FROM samples ORDER BY id DESC LIMIT 1"
    ).fetchone()
    assert secret in prompt
    assert json.loads(candidates) == [c.message.content for c in out.choices]
    captured = capfd.readouterr()
    assert secret not in captured.out + captured.err
