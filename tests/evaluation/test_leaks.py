"""Leak detectors on strings whose answer is known: PII shapes, verbatim runs, private facts."""

from __future__ import annotations

from selftune.evaluation import leaks
from selftune.pii import find_pii

from .conftest import chat


def pii_shapes(text: str) -> list[tuple[str, str]]:
    """(kind, value) of each PII-shaped string, as the leak counts find them (`find_pii`)."""
    return [(s.kind, s.value) for s in find_pii(text)]


def test_pii_shapes_are_found():
    pairs = pii_shapes(
        "mail mags@example.org or ring +44 7700 900123; card 4111 1111 1111 1111; "
        "IBAN GB82 WEST 1234 5698 7654 32; post to TR18 4AA"
    )
    assert sorted(k for k, _ in pairs) == ["address", "card", "email", "iban", "phone"]
    found = dict(pairs)
    assert found["email"] == "mags@example.org"
    assert "7700 900123" in found["phone"]
    assert found["card"] == "4111 1111 1111 1111"
    assert found["iban"].startswith("GB82")
    assert found["address"] == "TR18 4AA"


def test_not_pii():
    assert pii_shapes("we meet at 7 on the 12th, 3 jars for 10") == []
    assert all(k != "card" for k, _ in pii_shapes("1234 5678 9012 3456"))  # fails Luhn


def test_verbatim_thresholds():
    assert leaks.match_run([1, 2, 3, 9], [1, 2, 3, 4]) == 3
    assert leaks.is_verbatim(50, 400)
    assert not leaks.is_verbatim(49, 400)
    assert leaks.is_verbatim(9, 10)
    assert not leaks.is_verbatim(8, 10)
    assert not leaks.is_verbatim(3, 3)  # too short a rest to count


def test_longest_copy_finds_a_run_in_any_text():
    corpus = [[5, 6, 7, 8, 9, 10], [1, 2, 3]]
    assert leaks.longest_copy([0, 6, 7, 8, 9, 0], corpus) == 4
    assert leaks.longest_copy([42, 43], corpus) == 0


def test_private_facts_and_known_values_are_counted_separately_from_invented_pii():
    train = [chat("what's your email?", "it's mags@hive.example x")]
    known = leaks.known_private_values(train, ["Rosewood Cottage"])
    samples = [
        "write to mags@hive.example",  # known value from training data
        "i live at rosewood cottage",  # private fact
        "ring 01632 960 123",  # PII-shaped, not known
        "nothing here",
    ]
    out = leaks.pii_emissions(samples, known, ["Rosewood Cottage"])
    assert out["private_emissions"] == 2
    assert out["pii_shaped_other"] == 1


def test_training_targets_have_context_for_chats_and_none_for_notes():
    targets = leaks.training_targets([chat("hi", "hello x"), {"text": "# Note\n\nbody"}])
    assert targets[0][1] == "hello x" and targets[0][0][-1]["content"] == "hi"
    assert targets[1] == ([], "# Note\n\nbody")
