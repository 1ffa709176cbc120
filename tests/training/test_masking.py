"""Loss masking: exactly the owner's replies (with their end-of-turn token) are trained."""

from __future__ import annotations

from selftune.training.encoding import IGNORE, encode_record
from selftune.training.packing import build_rows, pack_examples, target_mask


def _tokenizer(tokenizer_dir):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(tokenizer_dir)


def _trained_text(tokenizer, labels):
    """Decode each maximal run of trained tokens separately."""
    runs, current = [], []
    for label in labels:
        if label == IGNORE:
            if current:
                runs.append(tokenizer.decode(current))
            current = []
        else:
            current.append(label)
    if current:
        runs.append(tokenizer.decode(current))
    return runs


def test_decoded_trained_tokens_are_exactly_the_owner_replies(tokenizer_dir):
    tokenizer = _tokenizer(tokenizer_dir)
    messages = [
        {"role": "system", "content": "You are Mags."},
        {"role": "user", "content": "Tobias: are the bees ok?"},
        {"role": "assistant", "content": "they're grand, 2 new queens"},
        {"role": "user", "content": "Tobias: nice!! pics?"},
        {"role": "assistant", "content": "later x"},
    ]
    item = encode_record(tokenizer, {"messages": messages}, 4096)
    eot = tokenizer.convert_ids_to_tokens(tokenizer.eos_token_id)
    runs = _trained_text(tokenizer, item["labels"])
    assert [r.strip() for r in runs] == [
        f"they're grand, 2 new queens{eot}",
        f"later x{eot}",
    ]
    # nothing of the system prompt or the other person's words is a target
    trained = "".join(runs)
    assert "Tobias" not in trained and "Mags" not in trained and "assistant" not in trained


def test_packed_targets_decode_to_the_same_trained_tokens(tokenizer_dir):
    """What the loss actually sees after packing and shifting equals the owner-only labels."""
    tokenizer = _tokenizer(tokenizer_dir)
    records = [
        {
            "messages": [
                {"role": "user", "content": "hi"},
                {"role": "assistant", "content": "hey you"},
            ]
        },
        {"text": "# Bees\n- check the hive"},
        {
            "messages": [
                {"role": "user", "content": "tea?"},
                {"role": "assistant", "content": "always"},
            ]
        },
    ]
    items = [encode_record(tokenizer, r, 512) for r in records]
    rows = build_rows(items, 512)
    assert len(rows) == 1
    import torch

    _, targets = target_mask(torch.tensor([rows[0]["labels"]]))
    (order,) = pack_examples([len(item["input_ids"]) for item in items], 512)
    expected = [t for i in order for t in items[i]["labels"][1:] if t != IGNORE]
    assert targets.tolist() == expected
    text = tokenizer.decode(targets.tolist())
    assert "hey you" in text and "always" in text and "check the hive" in text
    assert "hi" not in text.replace("hive", "") and "tea" not in text
