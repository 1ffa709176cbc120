"""The upstream engine: selftune's server in front of another OpenAI-compatible server (a stub
here; llama-server when benchmarks/setup_llama_server.sh has built it): the twin's rendered
prompt goes upstream, candidates get their own seeds and run concurrently, streams and stop
strings work, a cancelled request closes its upstream streams, a dead upstream is a clear error."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
import threading
import time
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI, Request
from fastapi.responses import StreamingResponse
from tests.serving.conftest import LiveServer, free_port

from selftune.engines.base import GenRequest, render_chat
from selftune.engines.openai_engine import OpenAIEngine
from selftune.errors import SelftuneError


def stub_app(log: list[dict], closed: list[int], delay: float = 0.02):  # type: ignore[no-untyped-def]
    """An upstream that streams `max_tokens` words named after the seed, `delay` s apart."""
    app = FastAPI()

    @app.post("/v1/completions")
    async def completions(request: Request):  # type: ignore[no-untyped-def]
        body = await request.json()
        log.append(body)
        seed = body.get("seed", 0)

        async def events():  # type: ignore[no-untyped-def]
            sent = 0
            try:
                for k in range(body["max_tokens"]):
                    await asyncio.sleep(delay)
                    choice = {"index": 0, "text": f" s{seed}w{k}", "finish_reason": None}
                    sent += 1
                    yield f"data: {json.dumps({'choices': [choice]})}\n\n"
                done = {"index": 0, "text": "", "finish_reason": "length"}
                yield f"data: {json.dumps({'choices': [done]})}\n\n"
                usage = {"prompt_tokens": 3, "completion_tokens": sent, "total_tokens": sent + 3}
                yield f"data: {json.dumps({'choices': [], 'usage': usage})}\n\n"
                yield "data: [DONE]\n\n"
            finally:
                if sent < body["max_tokens"]:
                    closed.append(sent)

        return StreamingResponse(events(), media_type="text/event-stream")

    return app


@pytest.fixture
def upstream():  # type: ignore[no-untyped-def]
    log: list[dict] = []
    closed: list[int] = []
    with LiveServer(stub_app(log, closed)) as server:
        server.log, server.closed = log, closed  # type: ignore[attr-defined]
        yield server


def test_candidates_go_upstream_with_their_own_seeds(upstream, tiny_engine):
    engine = OpenAIEngine(upstream.url, tiny_engine.tokenizer, "twin")
    pieces: dict[int, str] = {}
    request = GenRequest(
        "PROMPT",
        3,
        0.7,
        0.9,
        4,
        seed=10,
        on_text=lambda i, t: pieces.update({i: pieces.get(i, "") + t}),
    )
    result = engine.generate([request])[0]
    assert result.texts == [
        " s10w0 s10w1 s10w2 s10w3",
        " s11w0 s11w1 s11w2 s11w3",
        " s12w0 s12w1 s12w2 s12w3",
    ]
    assert [pieces[i] for i in range(3)] == result.texts
    assert result.completion_tokens == [4, 4, 4] and result.finish_reasons == ["length"] * 3
    sent = sorted(upstream.log, key=lambda b: b["seed"])
    assert [b["seed"] for b in sent] == [10, 11, 12]
    assert {b["prompt"] for b in sent} == {"PROMPT"}
    assert sent[0]["temperature"] == 0.7 and sent[0]["top_p"] == 0.9 and sent[0]["stream"]


def test_sampling_fields_are_forwarded(upstream, tiny_engine):
    engine = OpenAIEngine(upstream.url, tiny_engine.tokenizer, "twin")
    request = GenRequest("p", 1, 0.5, 1, 2, presence_penalty=0.5, logit_bias={7: -100.0},
                         response_format={"type": "json_object"})  # fmt: skip
    engine.generate([request])
    sent = upstream.log[-1]
    assert sent["presence_penalty"] == 0.5 and sent["logit_bias"] == {"7": -100.0}
    assert sent["response_format"] == {"type": "json_object"} and "frequency_penalty" not in sent


def test_stop_strings_cut_and_close_the_stream(upstream, tiny_engine):
    engine = OpenAIEngine(upstream.url, tiny_engine.tokenizer, "twin")
    result = engine.generate([GenRequest("p", 1, 0, 1, 50, stop=["w3"], seed=1)])[0]
    assert result.texts == [" s1w0 s1w1 s1w2 s1"] and result.finish_reasons == ["stop"]
    time.sleep(0.3)
    assert upstream.closed, "the upstream stream was not closed at the stop string"


def test_server_in_front_renders_the_twin_prompt_and_runs_clients_at_once(
    upstream, make_state, tiny_engine
):
    from selftune.server import create_app

    state = make_state(max_batch=8)
    engine = OpenAIEngine(upstream.url, tiny_engine.tokenizer, "twin")
    state.engines = {"twin": engine}
    messages = [{"role": "user", "content": "bees ok?"}]
    with LiveServer(create_app(state)) as server:
        started = time.monotonic()

        def call(out: list) -> None:  # type: ignore[type-arg]
            body = {"model": "twin", "messages": messages, "n": 2, "max_tokens": 10, "seed": 3}
            out.append(httpx.post(f"{server.url}/v1/chat/completions", json=body, timeout=30))

        answers: list = []
        threads = [threading.Thread(target=call, args=(answers,)) for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        took = time.monotonic() - started
        models = httpx.get(f"{server.url}/v1/models").json()["data"]
    assert [a.status_code for a in answers] == [200] * 4
    choices = answers[0].json()["choices"]
    assert [c["message"]["content"] for c in choices] == [
        "".join(f" s{s}w{k}" for k in range(10)) for s in (3, 4)
    ]
    # 4 clients x 2 candidates x 10 tokens x 20 ms: 1.6 s one after another, ~0.2 s at once
    assert took < 1.2, f"upstream requests ran one after another ({took:.2f}s)"
    prompt = upstream.log[0]["prompt"]  # rendered here, with the twin's own system prompt
    assert "bees ok?" in prompt and "Mags" in prompt and prompt.rstrip().endswith("assistant")
    assert models[0]["engine"] == "openai"


def test_a_dead_upstream_is_a_clear_error(tiny_engine):
    engine = OpenAIEngine(f"http://127.0.0.1:{free_port()}/v1", tiny_engine.tokenizer)
    with pytest.raises(SelftuneError, match="not answering"):
        engine.generate([GenRequest("p", 1, 0, 1, 3)])
    with pytest.raises(SelftuneError, match="not an http"):
        OpenAIEngine("localhost:8080", tiny_engine.tokenizer)


def llama_server_binary() -> Path | None:
    candidates = [
        os.environ.get("SELFTUNE_LLAMA_SERVER", ""),
        str(Path.home() / ".cache/selftune/llama-server/bin/llama-server"),
        shutil.which("llama-server") or "",
    ]
    return next((Path(c) for c in candidates if c and Path(c).exists()), None)


@pytest.mark.slow
def test_against_llama_server(tokenizer_dir):
    """The real thing, when benchmarks/setup_llama_server.sh has built llama-server."""
    binary = llama_server_binary()
    if binary is None:
        pytest.skip("llama-server not built (benchmarks/setup_llama_server.sh)")
    from transformers import AutoTokenizer

    from selftune.models import embedded_gguf_path

    port = free_port()
    proc = subprocess.Popen(
        [str(binary), "-m", str(embedded_gguf_path()), "--host", "127.0.0.1", "--port", str(port),
         "-np", "4", "-c", "4096", "-t", "1"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{url}/health", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.3)
        tokenizer = AutoTokenizer.from_pretrained(tokenizer_dir)
        engine = OpenAIEngine(url, tokenizer, "twin")
        prompt = render_chat(tokenizer, [{"role": "user", "content": "Name a fruit."}])
        result = engine.generate([GenRequest(prompt, 3, 0.8, 0.95, 12, seed=4)])[0]
        again = engine.generate([GenRequest(prompt, 3, 0.8, 0.95, 12, seed=4)])[0]
        assert all(result.texts) and result.texts == again.texts
        assert len(set(result.texts)) > 1
        greedy = engine.generate([GenRequest(prompt, 1, 0, 1, 200)])[0]
        assert greedy.finish_reasons == ["stop"] and "<|im_end|>" not in greedy.texts[0]
    finally:
        proc.terminate()
        proc.wait(timeout=10)
