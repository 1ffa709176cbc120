"""The one PII definition: build (scrub), eval (leak counts) and serve (the output guard) find the
same things in the same texts, and private facts match in any case and whitespace."""

from __future__ import annotations

import pytest

from selftune.dataset.scrub import Scrubber
from selftune.evaluation import leaks
from selftune.guards import REDACTED, OutputGuard
from selftune.pii import FactMatcher, find_pii, value_key

TEXTS = [
    "mail mags@example.org or ring +44 7700 900123",
    "card 4111 1111 1111 1111 exp 12/27",
    "1234 5678 9012 3456 is not a valid card",  # the old guard redacted any 16 digits
    "pay GB82 WEST 1234 5698 7654 32 please",
    "GB00 WEST 1234 5698 7654 32 fails the checksum",
    "post it to TR18 4AA",  # eval counted postcodes, the old guard did not
    "i'm at 12 harbour road now",
    "reset at https://example.org/reset?token=abc123",
    "see https://example.org/some/page?lang=en",
    "meet at 12:30 on 2024-03-14, 3 jars for 10",
    "call (555) 123-4567 after six or 555.123.4567",
    "pi is 3.14159265 and the jar is 454g",
    "ring 0044 7700 900123 or 07700 900123",
    "1. 0207 946 0958 is the office",  # a list number before a phone number
    "12 4111 1111 1111 1111",  # a number before a card number
]
FACTS = ["my locker code is 739204", "Rosewood Cottage"]
FACT_TEXTS = [
    "My Locker Code Is 739204",
    "my  locker code is 739204",  # double space
    "my locker\u00a0code is 739204",  # no-break space
    "my locker code is\n739204",  # two messages merged into one turn
    "my lo\u200bcker code is 739204",  # zero-width space
    "we stayed at ROSEWOOD   cottage",
]
NOT_FACTS = ["my locker is open", "a rosewood table", "nothing here"]


@pytest.mark.parametrize("text", TEXTS)
def test_build_eval_and_serve_agree_on_pii(text):
    spans = find_pii(text)
    scrubbed = Scrubber().scrub(text)
    redacted = OutputGuard().redact(text)
    assert leaks.pii_emissions([text], {}, [])["pii_shaped_other"] == len(spans)
    assert scrubbed.count("<") == len(spans)
    assert redacted.count(REDACTED) == len(spans)
    for span in spans:
        assert span.value not in scrubbed and span.value not in redacted
    # outside the spans, all three leave the text alone
    assert scrubbed.replace("<", "\0").count("\0") == redacted.count(REDACTED)


def test_the_agreement_is_not_vacuous():
    kinds = {s.kind for t in TEXTS for s in find_pii(t)}
    assert kinds == {"email", "phone", "card", "iban", "address", "url"}
    assert not find_pii(TEXTS[2]) and not find_pii(TEXTS[4]) and not find_pii(TEXTS[9])


@pytest.mark.parametrize("text", FACT_TEXTS)
def test_private_facts_match_in_any_case_and_whitespace_in_all_three(text):
    scrubber = Scrubber(FACTS, pii=False)
    assert "<PRIVATE>" in scrubber.scrub(text)
    assert REDACTED in OutputGuard(FACTS, pii=False).redact(text)
    assert leaks.pii_emissions([text], {}, FACTS)["private_emissions"] == 1
    with pytest.raises(Exception, match="private fact"):
        scrubber.assert_clean(text, "train.jsonl")


@pytest.mark.parametrize("text", NOT_FACTS)
def test_other_text_is_not_a_fact(text):
    assert Scrubber(FACTS, pii=False).scrub(text) == text
    assert OutputGuard(FACTS, pii=False).redact(text) == text
    assert leaks.pii_emissions([text], {}, FACTS)["private_emissions"] == 0


def test_one_value_written_two_ways_is_one_value():
    assert value_key("phone", "+44 7700 900123") == value_key("phone", "0044 7700-900123")
    assert value_key("card", "4111 1111 1111 1111") == value_key("card", "4111-1111-1111-1111")
    assert value_key("email", "Mags@Example.org") == value_key("email", "mags@example.org")
    known = leaks.known_private_values([{"messages": [
        {"role": "user", "content": "number?"},
        {"role": "assistant", "content": "+44 7700 900123"},
    ]}], [])  # fmt: skip
    out = leaks.pii_emissions(["ring 0044 7700-900123"], known, [])
    assert out["private_emissions"] == 1 and out["pii_shaped_other"] == 0


def test_partial_fact_at_the_end():
    matcher = FactMatcher(FACTS)
    assert matcher.partial_at_end("sure, my locker code is 739") is not None
    assert matcher.partial_at_end("sure, My  Locker code is 73") is not None
    assert matcher.partial_at_end("i left it in my") is None  # too little of the fact
    assert matcher.partial_at_end("rose") is None  # under half of "rosewood cottage"
    assert matcher.partial_at_end("at Rosewood Co") is not None


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("1. 0207 946 0958", "0207 946 0958"),
        ("2. +44 20 7946 0958 ok", "+44 20 7946 0958"),
        ("12 4111 1111 1111 1111", "4111 1111 1111 1111"),
        ("1 (202) 555-1234", "(202) 555-1234"),
    ],
)
def test_a_number_that_is_not_a_value_hides_none_after_it(text, value):
    # a match that fails its check ("1. 0207 946 0958" is no phone number) is not skipped
    # whole: the value starting inside it is found, as it is without the number before it
    assert [s.value for s in find_pii(text)] == [value]
    assert [s.value for s in find_pii(text[text.index(value) :])] == [value]
