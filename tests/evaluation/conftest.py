"""Helpers for the evaluation tests: a small hand-made dataset folder with a known owner style."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

SYSTEM = "You are Mags. You are chatting on Whatsapp in 'Juno'. Reply as Mags would."
# the owner writes in lowercase with dashes and kisses; the others write formally
OWNER = [
    "oh grand — bring it round tomorrow x",
    "righto, the bees are fine — a bit grumpy in the rain",
    "i'll check the hive on sunday, come if you like x",
    "no bother — the varnish needs another coat anyway",
    "ha, biscuit ate the sourdough starter again",
    "yes! the violin's nearly done — just the bridge left",
    "i moved the post a hair towards the bridge x",
    "tide's out at six, meet by the harbour arms?",
    "lovely — save me a jar of the heather honey x",
    "grand, see you thursday then",
]
OTHERS = [
    "Good morning. Could you please confirm the meeting time?",
    "The Committee Will Meet On Thursday At Seven O'Clock.",
    "Thank you for your message. I shall reply in due course.",
    "Please find attached the minutes of the previous meeting.",
    "Are you available to inspect the apiary this weekend?",
    "Kind regards, and many thanks for the honey.",
    "I Have Forwarded Your Request To The Treasurer.",
    "Would Saturday afternoon suit you for the inspection?",
    "Dear all, the annual subscription is now due.",
    "We Look Forward To Seeing You At The Show.",
]


def chat(user: str, reply: str) -> dict:
    return {
        "messages": [
            {"role": "system", "content": SYSTEM},
            {"role": "user", "content": user},
            {"role": "assistant", "content": reply},
        ]
    }


def write_split(folder: Path, split: str, records: list[dict], source: str = "whatsapp") -> None:
    with (
        (folder / f"{split}.jsonl").open("w") as fh,
        (folder / f"{split}.meta.jsonl").open("w") as meta,
    ):
        for i, r in enumerate(records):
            fh.write(json.dumps(r) + "\n")
            src = "notes:markdown" if "text" in r else source
            meta.write(
                json.dumps({"source": src, "conversation": f"c{i}", "start": None, "tokens": 0})
                + "\n"
            )


@pytest.fixture
def small_dataset(tmp_path: Path) -> Path:
    """8 training and 2 held-out chat examples plus one note each, in the dataset folder layout."""
    folder = tmp_path / "datasets" / "d1"
    folder.mkdir(parents=True)
    train = [chat(o, m) for o, m in zip(OTHERS[:8], OWNER[:8], strict=True)]
    train.append({"text": "# Hive inspection log\n\nQueen seen, brood good, two frames of stores."})
    valid = [chat(o, m) for o, m in zip(OTHERS[8:], OWNER[8:], strict=True)]
    valid.append({"text": "# Tide notes\n\nLow tide at six; the sand bar shows by seven."})
    write_split(folder, "train", train)
    write_split(folder, "valid", valid)
    return folder
