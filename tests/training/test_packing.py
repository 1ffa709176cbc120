"""Packing: rows stay within the limit, and a packed row computes what separate examples compute."""

from __future__ import annotations

import pytest

from selftune.training.packing import IGNORE, PackedCollator, build_rows, pack_examples, target_mask


def test_first_fit_decreasing_fills_rows_within_limit():
    lengths = [9, 2, 7, 3, 1, 5, 10]
    rows = pack_examples(lengths, 10)
    assert sorted(i for row in rows for i in row) == list(range(len(lengths)))
    assert all(sum(lengths[i] for i in row) <= 10 for row in rows)
    assert len(rows) == 4  # 37 tokens need at least 4 rows of 10


def test_rows_restart_positions_and_never_train_an_example_first_token():
    items = [
        {"input_ids": [5, 6, 7], "labels": [5, 6, 7]},
        {"input_ids": [8, 9], "labels": [8, 9]},
    ]
    (row,) = build_rows(items, 8)
    assert row["input_ids"] == [5, 6, 7, 8, 9]
    assert row["position_ids"] == [0, 1, 2, 0, 1]
    assert row["labels"] == [IGNORE, 6, 7, IGNORE, 9]
    batch = PackedCollator(pad_token_id=0)(
        [row, {**row, "input_ids": [1], "labels": [IGNORE], "position_ids": [0]}]
    )
    keep, targets = target_mask(batch["labels"])
    # predictions from 5->6, 6->7 and 8->9 only; never 7->8 across the boundary, never padding
    assert targets.tolist() == [6, 7, 9]
    assert keep[0].tolist() == [True, True, False, True, False]
    assert batch["position_ids"][1].tolist() == [0, 0, 1, 2, 3]
    assert int(batch["real_tokens"]) == 6


def test_packed_logits_equal_per_example_logits(tiny_model_dir):
    torch = pytest.importorskip("torch")
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir, attn_implementation="sdpa")
    model.eval()
    g = torch.Generator().manual_seed(1)
    examples = [torch.randint(10, 1000, (n,), generator=g).tolist() for n in (7, 4, 9, 3)]
    items = [{"input_ids": e, "labels": e} for e in examples]
    rows = build_rows(items, 16)
    assert len(rows) > 1 and any(len(r["position_ids"]) > max(map(len, examples)) for r in rows)
    batch = PackedCollator(pad_token_id=0)(rows)
    with torch.no_grad():
        packed = model(
            input_ids=batch["input_ids"], position_ids=batch["position_ids"], use_cache=False
        ).logits
        for r, row in enumerate(rows):
            # walk the row's segments and compare each with the example run alone
            seg_starts = [p for p, pos in enumerate(row["position_ids"]) if pos == 0]
            seg_ends = seg_starts[1:] + [len(row["position_ids"])]
            for s, e in zip(seg_starts, seg_ends, strict=True):
                alone = model(input_ids=batch["input_ids"][r : r + 1, s:e]).logits[0]
                torch.testing.assert_close(packed[r, s:e], alone, atol=1e-4, rtol=1e-4)
