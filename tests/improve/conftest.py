"""Improve fixtures: a workspace with a small dataset, a parent run of the tiny model, and
synthetic picks where the owner always keeps the lowercase, dashed candidate. Every pick's two
candidates are texts of their own (`owner_text(i)`, `formal_text(i)`: no two samples share a
candidate), so a ranker measured on the held-out picks has never seen their texts."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

PARENT = "20200101-000000"
OWNER_STYLE = [
    "oh grand — bring it round tomorrow x",
    "righto — the bees are fine x",
    "ha — biscuit ate it again x",
    "lovely — see you thursday x",
]
FORMAL = [
    "Dear Sir, I Shall Reply In Due Course.",
    "Please Find Attached The Minutes.",
    "Kind Regards, The Committee.",
    "The Treasurer Will Be In Touch.",
]
OPENERS = ["oh grand", "righto", "ha", "lovely", "bees willing", "aye", "oh go on"]
THINGS = [
    "the hives", "biscuit", "the varnish", "the fiddle", "thursday", "the stall", "the tide",
    "the honey", "no. 4", "the creek", "juno's gig", "the starter", "the harbour",
]  # fmt: skip
FORMAL_OPENERS = ["Dear Sir,", "Please Note:", "Kind Regards,", "For The Record,", "Regarding"]
FORMAL_THINGS = [
    "The Minutes", "The Annual Report", "Your Invoice", "The Committee", "The Agenda",
    "The Treasurer", "Our Policy", "The Schedule", "The Budget", "The Venue", "Your Request",
]  # fmt: skip


def owner_text(i: int) -> str:
    """The owner's style (lowercase, a dash, "x"), a different text for every `i`."""
    return f"{OPENERS[i % len(OPENERS)]} — {THINGS[i % len(THINGS)]} is sorted x"


def formal_text(i: int) -> str:
    return f"{FORMAL_OPENERS[i % len(FORMAL_OPENERS)]} {FORMAL_THINGS[i % len(FORMAL_THINGS)]} Follows."


def chat(i: int, reply: str) -> dict:
    return {
        "messages": [
            {"role": "system", "content": "You are Mags."},
            {"role": "user", "content": f"how are the bees {i}?"},
            {"role": "assistant", "content": reply},
        ]
    }


@pytest.fixture
def improve_ws(tmp_path: Path, tiny_model_dir: Path):
    """A workspace with a dataset (chats + a note) and a finished tiny LoRA run `r0`."""
    from selftune.config import TrainConfig
    from selftune.training.trainer import train
    from selftune.workspace import init_workspace

    ws = init_workspace(tmp_path / "twin", ["Mags"])
    folder = ws.datasets_dir / "d1"
    folder.mkdir(parents=True)
    train_records = [chat(i, OWNER_STYLE[i % 4]) for i in range(8)]
    train_records.append(
        {"text": "# hive log\n\nqueen seen, brood good\n- frame 3 capped\n- frame 4 eggs"}
    )
    valid_records = [chat(100 + i, OWNER_STYLE[i % 4]) for i in range(2)]
    for name, records in (("train", train_records), ("valid", valid_records)):
        (folder / f"{name}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
        metas = [{"source": "notes:markdown" if "text" in r else "whatsapp"} for r in records]
        (folder / f"{name}.meta.jsonl").write_text("".join(json.dumps(m) + "\n" for m in metas))
    config = TrainConfig(
        base=str(tiny_model_dir),
        max_seq_len=96,
        batch_size=2,
        learning_rate=5e-3,
        lora_r=8,
        eval_every=50,
        early_stopping_patience=None,
        precision="fp32",
        max_steps=2,
    )
    run_dir = ws.runs_dir / PARENT
    run_dir.mkdir(parents=True)
    train(folder, run_dir, config)
    ws.config.train.base = str(tiny_model_dir)
    ws.config.improve.learning_rate = 5e-3
    ws.config.improve.epochs = 3
    ws.config.improve.replay = 0.5
    return ws


def add_picks(ws, count: int = 10, start: int = 0) -> list[int]:
    """`count` reviewed samples: two candidates each, the owner-style one kept (index varies)."""
    from selftune.store.samples import SampleLog

    log = SampleLog(ws.store_path)
    ids = []
    for i in range(start, start + count):
        messages = [
            {"role": "system", "content": "You are Mags."},
            {"role": "user", "content": f"are you coming sunday {i}?"},
        ]
        mine, formal = owner_text(i), formal_text(i)
        candidates = [mine, formal] if i % 2 else [formal, mine]
        sample = log.add("amplify", "r0", {"messages": messages}, {"kind": "chat"}, candidates)
        log.pick(sample, candidates.index(mine))
        log.rate(sample, candidates.index(formal), -1)
        ids.append(sample)
    return ids
