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
    "1.", " 2025", "2025", "202", " 555", "-1234", " 1234", "0207", " 946", " 0958", " 20",
    " 7946", "(555)", "**", ":", "http", "s://", "EMA", "IL", " was", " the", "Here", "\u0301",
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


groups = st.text("0123456789", min_size=1, max_size=4)
numbers = st.lists(
    st.tuples(st.sampled_from(["", " ", ".", "-", "(", ")", "+", ", ", " x", "x", "@"]), groups),
    min_size=1,
    max_size=8,
).map(lambda parts: "".join(a + b for a, b in parts))


@settings(max_examples=600, deadline=None)
@given(text=numbers, tail=st.sampled_from(["", " ", ".", "x", "5", " ok", "-", ",1"]))
def test_numbers_character_by_character_equal_the_answer(text, tail):
    # digit groups with the separators phone, card and IBAN numbers use: what is held while a
    # number could still become a value, and what goes out once it cannot
    text += tail
    guard = OutputGuard([])
    assert "".join(stream(guard, text, list(range(1, len(text))))) == guard.redact(text)


def _luhn_completed(digits: str) -> str:
    total = sum(
        (2 * int(d) - 9 if 2 * int(d) > 9 else 2 * int(d)) if i % 2 == 0 else int(d)
        for i, d in enumerate(reversed(digits))
    )
    return digits + str(-total % 10)


cards = st.tuples(st.text("0123456789", min_size=12, max_size=18), st.sampled_from(["", " ", "-"]))
cards = cards.map(
    lambda c: (
        c[1]
        .join(_luhn_completed("4" + c[0][1:])[i : i + 4] for i in range(0, 19, 4))
        .strip(c[1] or " ")
    )
)
us = st.tuples(*[st.text("0123456789", min_size=n, max_size=n) for n in (3, 3, 4)],
               st.sampled_from([("", " ", "-"), ("(", ") ", "-"), ("", ".", "."), ("", "", "-")]))  # fmt: skip
us = us.map(lambda u: f"{u[3][0]}{'2' + u[0][1:]}{u[3][1]}{u[1]}{u[3][2]}{u[2]}")
values = st.one_of(
    cards, us, st.sampled_from(["+44 20 7946 0958", "0207 946 0958", "00 44 7700 900123"])
)


@settings(max_examples=400, deadline=None)
@given(
    before=st.sampled_from(["", "1. ", "12 ", "x ", "(", "+", "0", "2025 ", "call "]),
    value=values,
    after=st.sampled_from(["", " ", "5", " 5x", ".", ".5", ",5", ",", "-", "x", " 12", "1"]),
)
def test_a_value_among_numbers_is_never_sent_in_part(before, value, after):
    # valid card (Luhn) and phone numbers, with a number before and what may spoil them after,
    # streamed character by character: what goes out equals the non-streamed answer
    text = before + value + after
    guard = OutputGuard([])
    assert "".join(stream(guard, text, list(range(1, len(text))))) == guard.redact(text)


def test_a_reply_goes_out_as_it_is_written():
    s = GuardedStream(OutputGuard(FACTS[:3]))
    words = REPLY.split()
    out = [s.feed(w if i == 0 else " " + w) for i, w in enumerate(words)]
    # everything but the word being written is out as soon as the next word starts, and a
    # word that ends in what no value can hold (",") goes at once
    assert out[0] == "sure," and out[1] == " " and out[2] == "I "
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


def fed(guard: OutputGuard, tokens: list[str], context: str = "") -> list[str]:
    s = GuardedStream(guard, context=context)
    return [s.feed(t) for t in tokens] + [s.finish()]


def test_a_list_number_goes_out_once_it_cannot_be_a_value():
    guard = OutputGuard(FACTS[:3])
    # "1" could start a card, a US number or an address, "1." an email (1.j@x.org); "1. "
    # can no longer be anything, so it goes with the third token, and "**" with it
    assert fed(guard, ["1", ".", " **", "Dragon", "**", ":", " a"]) == [
        "", "", "1. **", "", "Dragon**", ":", " ", "a"
    ]  # fmt: skip
    assert fed(guard, ["[", "1", "]", " I"])[:4] == ["", "[", "1]", " "]


def test_a_year_is_held_only_while_it_could_be_a_value():
    guard = OutputGuard(FACTS[:3])
    # "2025" could still become a card or a US number (202555-1234), "2025." an email
    sent = fed(guard, ["in", " 2025", ".", " We", " went"])
    assert sent[:5] == ["", "in ", "", "2025. ", "We "]
    sent = fed(guard, ["in", " 2025", " was", " a", " year", " of", " it"])
    assert "".join(sent[:3]) == "in "  # "2025 was": a house number and a street's first word?
    assert "".join(sent[:4]) == "in 2025 was "  # "was" is never part of a street's name


def test_a_phone_number_split_into_tokens_never_goes_out_in_part():
    guard = OutputGuard(FACTS[:3])
    tokens = ["call", " +", "44", " 20", " 79", "46", " 09", "58", " now", " ok"]
    sent = fed(guard, tokens)
    assert "".join(sent) == f"call {REDACTED} now ok"
    assert not any(d in piece for piece in sent for d in "0123456789")
    # a US number starting with a digit, and one a digit at the end would spoil
    sent = fed(guard, ["ring", " 202", " 555", " 1234", " 5", "x"])
    assert "".join(sent) == f"ring {REDACTED} 5x" and not any("202" in p for p in sent)


def test_a_card_number_token_by_token_never_goes_out_in_part():
    guard = OutputGuard(FACTS[:3])
    digits = "4111 1111 1111 1111"
    tokens = ["pay", " with", " "] + [c for c in digits] + [" ", "thanks"]
    sent = fed(guard, tokens)
    assert "".join(sent) == f"pay with {REDACTED} thanks"
    assert all(not any(c.isdigit() for c in piece) for piece in sent)
    # not a card (Luhn fails): the digits go out once 19 more could no longer make one
    sent = fed(guard, ["pay", " 1234", " 5678", " 9012", " 3456", " now"])
    assert "".join(sent) == "pay 1234 5678 9012 3456 now"


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
