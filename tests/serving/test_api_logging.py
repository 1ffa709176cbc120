"""What the OpenAI routes log and how they order candidates: `store: false` logs nothing, calls
wait in the Review queue only when they ask for review, and `rank` is honoured (or named in
`selftune.ignored` where it cannot be)."""

from __future__ import annotations

import json
import sqlite3

from fastapi.testclient import TestClient

from selftune.engines.base import GenResult
from selftune.server import create_app


class Numbered:
    """Candidate c says 'c' repeated c + 1 times (so a longer-is-better ranker reverses them)."""

    name, model_id = "numbered", "twin"

    def __init__(self, tokenizer):  # type: ignore[no-untyped-def]
        self.tokenizer = tokenizer

    def generate(self, requests):  # type: ignore[no-untyped-def]
        out = []
        for r in requests:
            texts = [f"{c}" * (c + 1) for c in range(r.n)]
            out.append(GenResult(texts, 1, [c + 1 for c in range(r.n)], ["stop"] * r.n))
        return out


class LongerIsBetter:
    def scores(self, texts):  # type: ignore[no-untyped-def]
        return [len(t) for t in texts]


def _state(make_state, tiny_engine, ranker=None):  # type: ignore[no-untyped-def]
    state = make_state()
    state.engines["twin"] = Numbered(tiny_engine.tokenizer)
    state.ranker = ranker
    return state


def _samples(state) -> int:  # type: ignore[no-untyped-def]
    with sqlite3.connect(state.log.path) as db:
        return db.execute("SELECT count(*) FROM samples").fetchone()[0]


CHAT = {"messages": [{"role": "user", "content": "hi"}], "n": 3, "max_tokens": 4}


def test_store_false_logs_nothing(make_state, tiny_engine):
    state = _state(make_state, tiny_engine)
    with TestClient(create_app(state)) as client:
        chat = client.post("/v1/chat/completions", json=CHAT | {"store": False}).json()
        done = client.post("/v1/completions", json={"prompt": "hi", "store": False}).json()
        streamed = client.post("/v1/chat/completions", json=CHAT | {"store": False, "stream": True})
    assert chat["selftune"]["sample_id"] is None and chat["selftune"]["stored"] is False
    assert done["selftune"]["sample_id"] is None
    assert streamed.status_code == 200 and "[DONE]" in streamed.text
    assert _samples(state) == 0


def test_api_calls_wait_for_review_only_when_they_ask(make_state, tiny_engine):
    state = _state(make_state, tiny_engine)
    with TestClient(create_app(state)) as client:
        plain = client.post("/v1/chat/completions", json=CHAT).json()
        asked = client.post("/v1/chat/completions", json=CHAT | {"review": True}).json()
        client.post("/v1/completions", json={"prompt": "hi", "n": 2, "max_tokens": 3})
        queue = client.get("/api/review").json()
    assert plain["selftune"]["sample_id"] is not None  # logged, for the owner's history
    waiting = [s["id"] for s in state.log.waiting()]
    assert waiting == [asked["selftune"]["sample_id"]]
    assert json.dumps(queue).count(str(asked["selftune"]["sample_id"])) >= 1


def test_rank_is_honoured_or_named_as_ignored(make_state, tiny_engine):
    state = _state(make_state, tiny_engine, LongerIsBetter())
    with TestClient(create_app(state)) as client:
        ranked = client.post("/v1/chat/completions", json=CHAT | {"rank": True}).json()
        as_is = client.post("/v1/chat/completions", json=CHAT | {"rank": False}).json()
        legacy = client.post("/v1/completions", json={"prompt": "hi", "n": 3, "rank": True}).json()
        stream = client.post("/v1/chat/completions", json=CHAT | {"rank": True, "stream": True})
        state.ranker = None
        untrained = client.post("/v1/chat/completions", json=CHAT | {"rank": True}).json()
    texts = [c["message"]["content"] for c in ranked["choices"]]
    assert texts == ["222", "11", "0"] and "ignored" not in ranked["selftune"]
    assert [c["message"]["content"] for c in as_is["choices"]] == ["0", "11", "222"]
    assert [c["text"] for c in legacy["choices"]] == ["222", "11", "0"]
    assert '"ignored": ["rank"]' in stream.text  # a stream's order is fixed as it is sent
    assert untrained["selftune"]["ignored"] == ["rank"]
