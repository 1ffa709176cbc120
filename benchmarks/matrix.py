"""Matrix figures against a local Synapse (the dev extra's `matrix-synapse`, on 127.0.0.1):

1. `ingest matrix` of 10,000 room events (10 rooms, a contact and the owner taking turns):
   events/s of the whole command (sync, back-pagination, records, store), wall and CPU time of
   this process (Synapse's own CPU is another process's);
2. the bot's latency from a contact's message to the drafts in the approvals room (p50/p95 over
   `--rounds`), with an instant stub engine, so it is the bot's and the homeserver's part alone
   (a real model adds its own generation time: benchmarks/serve.py); the first round is printed
   as a transcript (contact's message, drafts, the owner's "2", the reply, the pick).

    PYTHONPATH=src python benchmarks/matrix.py                 # the recorded run
    PYTHONPATH=src python benchmarks/matrix.py --events 2000 --rounds 4

Run `uptime` first: the CPU is shared on the dev machine.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))  # the test suite's Synapse launcher

from tests.matrix.homeserver import Homeserver, User  # noqa: E402

from selftune.engines.base import GenResult  # noqa: E402
from selftune.matrix.account import Account, save_account  # noqa: E402
from selftune.workspace import init_workspace  # noqa: E402


class StubEngine:
    model_id = "stub"

    def __init__(self, tokenizer):  # type: ignore[no-untyped-def]
        self.tokenizer = tokenizer

    def generate(self, requests):  # type: ignore[no-untyped-def]
        return [
            GenResult([f"draft {i + 1}" for i in range(r.n)], 2, [2] * r.n, ["stop"] * r.n)
            for r in requests
        ]


async def _send_many(hs: Homeserver, users: list[User], rooms: list[str], count: int) -> None:
    """`count` messages over the rooms, 16 in flight at a time."""
    limit = asyncio.Semaphore(16)
    async with httpx.AsyncClient(timeout=60) as http:

        async def one(i: int) -> None:
            user, room = users[i % 2], rooms[(i // 2) % len(rooms)]
            path = f"/_matrix/client/v3/rooms/{room}/send/m.room.message/b{i}"
            async with limit:
                reply = await http.put(
                    hs.url + path,
                    json={"msgtype": "m.text", "body": f"message {i} about the climbing trip"},
                    headers={"Authorization": f"Bearer {user.token}"},
                )
                reply.raise_for_status()

        await asyncio.gather(*(one(i) for i in range(count)))


def bench_ingest(hs: Homeserver, root: Path, events: int) -> dict[str, float]:
    from selftune.matrix import ingest_matrix

    owner = User(hs.url, hs.register("ingest_owner", "pw"))
    contact = User(hs.url, hs.register("ingest_contact", "pw"))
    rooms = []
    for _ in range(10):
        room = contact.create_room([owner.user_id])
        owner.join(room)
        rooms.append(room)
    start = time.perf_counter()
    asyncio.run(_send_many(hs, [contact, owner], rooms, events))
    send_s = time.perf_counter() - start
    ws = init_workspace(root / "ingest", ["Owner"])
    save_account(ws.root, Account(hs.url, owner.user_id, owner.token))
    wall, cpu = time.perf_counter(), time.process_time()
    result = ingest_matrix(ws)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    again = time.perf_counter()
    second = ingest_matrix(ws)
    again = time.perf_counter() - again
    return {
        "events_sent": events,
        "send_s": round(send_s, 2),
        "events_read": result.events,
        "messages_added": result.summary.messages_added,
        "ingest_wall_s": round(wall, 2),
        "ingest_cpu_s": round(cpu, 2),
        "events_per_s_wall": round(result.events / wall),
        "events_per_s_cpu": round(result.events / cpu),
        "second_run_added": second.summary.messages_added,
        "second_run_s": round(again, 2),
    }


def drafter_texts(notice: dict) -> list[str]:
    """The numbered drafts of a drafts notice."""
    lines = notice["content"]["body"].split("\n")
    return [line.split(". ", 1)[1] for line in lines if line[:1].isdigit() and ". " in line]


def bench_bot(hs: Homeserver, root: Path, rounds: int, tokenizer, model: str) -> dict[str, float]:  # type: ignore[no-untyped-def]
    from selftune.matrix.bot import Bot, run
    from selftune.matrix.drafting import Drafter

    owner = User(hs.url, hs.register("bot_owner", "pw"))
    owner.set_name("Mags")
    contact = User(hs.url, hs.register("whatsapp_447700900555", "pw"))
    contact.set_name("Carla (WA)")
    room = contact.create_room([owner.user_id], direct=True)
    owner.join(room)
    contact.put_state(room, "m.bridge", "whatsapp", {"protocol": {"id": "whatsapp"}})
    ws = init_workspace(root / "bot", ["Mags"])
    save_account(ws.root, Account(hs.url, owner.user_id, owner.token))
    ws.config.matrix.rooms = [room]
    ws.config.matrix.min_seconds_between_drafts = 0
    if model == "stub":
        drafter = Drafter(ws, engine=StubEngine(tokenizer))
    else:  # the embedded base model on llama.cpp, short drafts
        ws.config.sample.max_tokens = 24
        drafter = Drafter(ws, engine_kind="llamacpp", base_only=True)
    bot = Bot(ws, drafter, echo=lambda line: None)
    started, stopping = threading.Event(), threading.Event()
    thread = threading.Thread(
        target=lambda: asyncio.run(
            run(bot, timeout_ms=1000, ready=started.set, stop=stopping.is_set)
        ),
        daemon=True,
    )
    thread.start()
    started.wait(60)
    approvals = bot.state.approvals_room

    def notices() -> list[dict]:
        return [e for e in owner.messages(approvals, 20) if e["type"] == "m.room.message"]

    latencies, transcript = [], []
    for i in range(rounds):
        seen = {e["event_id"] for e in notices()}
        text = f"are you coming tonight? ({i + 1})"
        t0 = time.perf_counter()
        contact.say(room, text)
        while True:
            fresh = [e for e in notices() if e["event_id"] not in seen]
            drafts = [e for e in fresh if "\n1. " in e["content"]["body"]]
            if drafts:
                break
            time.sleep(0.02)
        latencies.append(time.perf_counter() - t0)
        owner.say(approvals, "2")
        deadline = time.time() + 30
        while time.time() < deadline:
            mine = [e for e in owner.messages(room, 5) if e["sender"] == owner.user_id]
            if mine and mine[0]["content"].get("body") == drafter_texts(drafts[0])[1]:
                break
            time.sleep(0.05)
        if i == 0:
            from selftune.store.samples import SampleLog

            log = SampleLog(ws.store_path)
            while not log.reviewed() and time.time() < deadline:  # logged right after sending
                time.sleep(0.05)
            (sample,) = log.reviewed()
            transcript = [
                f"Carla (WhatsApp room {room}): {text}",
                "selftune → approvals room:\n    "
                + drafts[0]["content"]["body"].replace("\n", "\n    "),
                "Mags → approvals room: 2",
                f"Mags (sent by selftune into the room): {mine[0]['content']['body']}",
                f"sample log: sample {sample['id']} endpoint={sample['endpoint']} "
                f"picked={sample['picked']} ({sample['candidates'][sample['picked']]!r})",
            ]
    stopping.set()
    thread.join(30)
    ordered = sorted(latencies)
    p95 = ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]
    print("\n".join(transcript))
    return {
        "rounds": rounds,
        "p50_s": round(statistics.median(latencies), 3),
        "p95_s": round(p95, 3),
        "all_s": [round(x, 3) for x in latencies],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=10000)
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument(
        "--model",
        choices=["stub", "base"],
        default="stub",
        help="stub: instant drafts (the bot and homeserver alone); base: the embedded model on "
        "llama.cpp, 24-token drafts",
    )
    args = parser.parse_args()
    from transformers import AutoTokenizer

    from selftune.models import embedded_gguf_path

    gguf = embedded_gguf_path()
    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    print("load before:", os.getloadavg())
    with tempfile.TemporaryDirectory() as tmp, Homeserver(Path(tmp) / "synapse") as hs:
        if args.events:
            print("ingest:", bench_ingest(hs, Path(tmp), args.events))
        print("load:", os.getloadavg())
        print("bot:", bench_bot(hs, Path(tmp), args.rounds, tokenizer, args.model))
    print("load after:", os.getloadavg())


if __name__ == "__main__":
    main()
