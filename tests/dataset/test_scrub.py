"""PII scrubbing: each type found, checksums respected, placeholders consistent per value."""

from __future__ import annotations

import pytest

from selftune.dataset.scrub import Scrubber, iban_valid, luhn_valid


@pytest.mark.parametrize(
    ("text", "kind"),
    [
        ("write to mags.o@example.org today", "email"),
        ("call +44 7700 900123 after six", "phone"),
        ("call 07700 900123 after six", "phone"),
        ("call (555) 123-4567 after six", "phone"),
        ("pay GB82 WEST 1234 5698 7654 32 please", "iban"),
        ("pay DE89370400440532013000 please", "iban"),
        ("card 4111 1111 1111 1111 exp 12/27", "card"),
        ("card 5500-0000-0000-0004 exp", "card"),
        ("card 4111 1111 1111 1111, exp 12/27", "card"),
        ("i'm at 12 harbour road now", "address"),
        ("post it to TR19 7AA", "address"),
        ("reset at https://example.org/reset?token=abc123", "url"),
        ("doc https://example.org/s/AbCdEfGhIjKlMnOpQrStUvWx12 here", "url"),
    ],
)
def test_each_type_becomes_a_typed_placeholder(text, kind):
    scrubber = Scrubber()
    out = scrubber.scrub(text)
    assert f"<{kind.upper()}_1>" in out
    assert scrubber.report()[kind]["occurrences"] == 1


@pytest.mark.parametrize(
    "text",
    [
        "meet at 12:30 on 2024-03-14",
        "1234 5678 9012 3456 is not a valid card",
        "GB00 WEST 1234 5698 7654 32 fails the checksum",
        "low tide is about 2 so we can walk the sands",
        "see https://example.org/some/page?lang=en",
        "pi is 3.14159265 and the jar is 454g",
        "3 frames of brood on the way",
    ],
)
def test_look_alikes_are_left_alone(text):
    assert Scrubber().scrub(text) == text


def test_the_same_value_gets_the_same_placeholder_and_different_values_different_ones():
    scrubber = Scrubber()
    a = scrubber.scrub("mail ana@example.org")
    b = scrubber.scrub("no, ANA@example.org!")
    c = scrubber.scrub("or sam@example.org")
    assert "<EMAIL_1>" in a and "<EMAIL_1>" in b and "<EMAIL_2>" in c
    assert scrubber.report()["email"] == {"occurrences": 3, "values": 2}


def test_private_facts_are_replaced_in_any_case_and_counted():
    scrubber = Scrubber(["Doris Lane", "the blue door"])
    out = scrubber.scrub("the key is under THE BLUE DOOR at doris lane")
    assert "blue door" not in out.lower() and "doris lane" not in out.lower()
    assert out.count("<PRIVATE>") == 2
    assert scrubber.report()["private_fact"] == {"occurrences": 2, "values": 2}


def test_checksums():
    assert iban_valid("GB82 WEST 1234 5698 7654 32")
    assert not iban_valid("GB83 WEST 1234 5698 7654 32")
    assert luhn_valid("4111111111111111") and not luhn_valid("4111111111111112")


def test_scrubbing_can_be_turned_off_but_private_facts_still_apply():
    scrubber = Scrubber(["secret"], pii=False)
    assert scrubber.scrub("mail a@example.org the secret") == "mail a@example.org the <PRIVATE>"


def test_dotted_us_numbers_and_spaced_ibans_pass_the_quick_checks():
    scrubber = Scrubber()
    assert scrubber.scrub("ring 555.123.4567") == "ring <PHONE_1>"
    assert scrubber.scrub("FR14 2004 1010 0505 0001 3M02 606") == "<IBAN_1>"
