"""The streaming guard releases text early and still sends exactly the non-streamed answer.

Property: for any text (built from pieces that make private facts split by whitespace, case and
zero-width characters, phone/card/IBAN/email/address shapes, placeholders and note links) cut into
any chunks, the pieces a `GuardedStream` sends add up to `finish_text` of the whole, and nothing
that the whole would redact is ever sent before it is decided. And the first piece goes out
before the answer is done."""

from __future__ import annotations

import json
import threading
import time

import httpx
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from selftune.guards import REDACTED, GuardedStream, OutputGuard

FACTS = ["my locker code is 739204", "Rose Lane", "pin 0000", "Straße", "a"]
PIECES = [
    " ", "  ", "\n", "\u00a0", "\u200b", ".", ",", "x", "hello", " there", "My", "my", " LOCKER",
    " locker", "\u00a0code", " code", " is", " 739", "204", "739204", "Rose", " rose", " Lane",
    "lane", "pin", " 0000", "00", "+44", " 7700", " 900123", "0", "12", " 4111", " 1111", "-",
    "(", ")", "mags", "@", "example", ".org", "https://", "www.", "x.io/", "?token=", "ab12" * 7,
    "DE89", " 3704", " 0044", " 0532", " 0130", " 00", "GB29", " NWBK", " Street", " Baker",
    "SW1A", " 1AA", "[", "]", "[[", "]]", "#", "#garden", "<", ">", "EMAIL", "_1", "PRIVATE", "{",
    "Straße", "STRASSE", "STRAS", "ß",
]  # fmt: skip
texts = st.lists(st.sampled_from(PIECES), min_size=1, max_size=30).map("".join)
REPLY = "sure, I can come on sunday but not before ten, the bus is late"
ANSWER = "sure I will be there on sunday at ten see you then"
contexts = st.sampled_from(["", "Remember: my locker code is ", "ring +44 7700", "my pin", "x"])


def stream(guard: OutputGuard, text: str, cuts: list[int], **options) -> list[str]:
    s = GuardedStream(guard, **options)
    sent, at = [], 0
    for cut in [*sorted(set(cuts)), len(text)]:
        if cut > at:
            sent.append(s.feed(text[at:cut]))
            at = cut
    sent.append(s.finish())
    return sent


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    text=texts,
    cuts=st.lists(st.integers(min_value=1, max_value=400), max_size=40),
    context=contexts,
    pii=st.booleans(),
    plain_links=st.booleans(),
    tag=st.sampled_from(["", "#twin "]),
)
def test_streamed_pieces_add_up_to_the_guarded_answer(text, cuts, context, pii, plain_links, tag):
    guard = OutputGuard(FACTS, pii=pii)
    options = {"context": context, "plain_links": plain_links, "tag_prefix": tag}
    cuts = [c for c in cuts if c < len(text)]
    sent = stream(guard, text, cuts, **options)
    assert "".join(sent) == GuardedStream(guard, **options).finish_text(text)


@settings(max_examples=200, deadline=None)
@given(text=texts)
def test_character_by_character_equals_the_answer(text):
    guard = OutputGuard(FACTS)
    sent = stream(guard, text, list(range(1, len(text))))
    assert "".join(sent) == guard.redact(text)


def test_a_reply_goes_out_as_it_is_written():
    s = GuardedStream(OutputGuard(FACTS[:3]))
    words = REPLY.split()
    out = [s.feed(w if i == 0 else " " + w) for i, w in enumerate(words)]
    # everything but the word being written is out as soon as the next word starts
    assert out[0] == "" and out[1] == "sure, "
    assert "".join(out) == " ".join(words[:-1]) + " "
    assert s.finish() == words[-1]


def test_only_what_could_become_a_match_is_held():
    s = GuardedStream(OutputGuard(FACTS[:3]))
    assert s.feed("call me on +44 7700") == "call me on "  # digits that may be a phone number
    assert s.feed(" 900123 tonight ok") == f"{REDACTED} tonight "
    s = GuardedStream(OutputGuard(FACTS[:3]))
    assert s.feed("well my  LOCKER code") == "well "  # the start of a fact, any case and spacing
    assert s.feed(" is 739204 so") == f"{REDACTED} "
    s = GuardedStream(OutputGuard(FACTS[:3]))
    assert s.feed("I said my locker key ") == "I said my locker key "  # not a fact after all


class _Held:
    """An engine that streams half its answer, then waits until the test has seen a piece."""

    name, model_id, supports = "held", "twin", frozenset()

    def __init__(self, tokenizer):  # type: ignore[no-untyped-def]
        self.tokenizer = tokenizer
        self.seen = threading.Event()
        self.waited = False

    def generate(self, requests):  # type: ignore[no-untyped-def]
        from selftune.engines.base import GenResult

        words = ANSWER.split()
        for request in requests:
            for i, word in enumerate(words[:6]):
                request.on_text(0, word if i == 0 else " " + word)
                time.sleep(0.01)
            self.waited = self.seen.wait(20)
            for word in words[6:]:
                request.on_text(0, " " + word)
        return [GenResult([" ".join(words)], 3, [len(words)], ["stop"]) for r in requests]


def test_the_first_piece_arrives_before_the_answer_is_done(make_state):
    from selftune.server import create_app

    from .conftest import LiveServer

    state = make_state()
    engine = state.engines["twin"] = _Held(state.engines["twin"].tokenizer)
    body = {"model": "twin", "messages": [{"role": "user", "content": "sunday?"}], "stream": True}
    text = ""
    with (
        LiveServer(create_app(state)) as live,
        httpx.stream("POST", live.url + "/v1/chat/completions", json=body, timeout=30) as r,
    ):
        for line in r.iter_lines():
            if line.startswith("data: {"):
                chunk = json.loads(line[6:])
                if chunk["choices"]:
                    piece = chunk["choices"][0]["delta"].get("content") or ""
                    if piece and not engine.seen.is_set():
                        assert not text  # the first piece, while the engine still waits
                        engine.seen.set()
                    text += piece
    assert engine.waited, "nothing was streamed before the answer was done"
    assert text == ANSWER
