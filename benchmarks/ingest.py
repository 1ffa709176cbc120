"""Ingest throughput: MB/s per format on a generated corpus, and selftune vs whatstk on one
WhatsApp file.

    PYTHONPATH=src python benchmarks/ingest.py                 # 50 MB corpus (the default)
    PYTHONPATH=src python benchmarks/ingest.py --mb 5          # a quick run
    PYTHONPATH=src python benchmarks/ingest.py --keep /tmp/corpus

The corpus is a decade of one person's messages split across WhatsApp, Telegram, Messenger, email,
Discord and Slack, written in each app's real export layout. For each format it reports parsing
alone (MB/s) and the whole `ingest` into a fresh SQLite store (parse, validate, insert), wall and
CPU time, with the load average. Then the same WhatsApp file is parsed by whatstk (in the dev
extra) and parsed and ingested by selftune, interleaved in this one process (medians of
`--repeats` runs), so the ratio is measured side by side.
"""

from __future__ import annotations

import argparse
import json
import mailbox
import os
import random
import shutil
import statistics
import tempfile
import time
from datetime import datetime, timedelta
from email.message import EmailMessage
from pathlib import Path

from selftune.ingest import ParseContext, get_parser
from selftune.ingest.importer import ingest_paths
from selftune.store import Store

WORDS = [
    "ok",
    "yes",
    "no",
    "maybe",
    "tonight",
    "tomorrow",
    "coffee",
    "garden",
    "climbing",
    "map",
    "wine",
    "cheese",
    "the",
    "a",
    "to",
    "of",
    "and",
    "in",
    "is",
    "it",
    "you",
    "that",
    "was",
    "for",
    "on",
    "are",
    "with",
    "as",
    "I",
    "his",
    "they",
    "be",
    "at",
    "one",
    "have",
    "this",
    "from",
    "or",
    "had",
    "by",
    "hot",
    "word",
    "but",
    "what",
    "some",
    "we",
    "can",
    "out",
    "other",
    "were",
    "all",
    "there",
    "when",
    "up",
    "use",
    "your",
    "how",
    "said",
    "an",
    "each",
    "she",
    "ça",
    "va?",
    "🎉",
    "😂",
    "❤️",
    "müller",
    "café",
    "12:30",
    "https://example.org/x",
]
PEOPLE = ["Tobias", "Ana Lima", "Mum", "Sam", "Kim"]
SHARES = {
    "whatsapp": 0.3,
    "telegram": 0.2,
    "messenger": 0.15,
    "email": 0.15,
    "discord": 0.1,
    "slack": 0.1,
}


def sentences(rng: random.Random):
    """Endless (author, text, time) of a chat between the owner and someone, ten years long."""
    when = datetime(2015, 1, 1, 8, 0)
    while True:
        when += timedelta(seconds=rng.randint(20, 2 * 3600))
        lines = [" ".join(rng.choices(WORDS, k=rng.randint(2, 18)))]
        if rng.random() < 0.1:
            lines.append(" ".join(rng.choices(WORDS, k=rng.randint(2, 10))))
        yield ("Mags" if rng.random() < 0.5 else rng.choice(PEOPLE)), "\n".join(lines), when


def write_whatsapp(folder: Path, size: int, rng: random.Random) -> Path:
    path = folder / "WhatsApp Chat with Tobias.txt"
    with path.open("w", encoding="utf-8") as fh:
        for author, text, when in sentences(rng):
            fh.write(f"{when:%d/%m/%Y, %H:%M} - {author}: {text}\n")
            if fh.tell() >= size:
                break
    return path


def write_telegram(folder: Path, size: int, rng: random.Random) -> Path:
    messages, total = [], 0
    for i, (author, text, when) in enumerate(sentences(rng)):
        msg = {
            "id": i,
            "type": "message",
            "date": when.isoformat(),
            "date_unixtime": str(int(when.timestamp())),
            "from": author,
            "from_id": "user42" if author == "Mags" else "user7",
            "text": text,
            "text_entities": [{"type": "plain", "text": text}],
        }
        messages.append(msg)
        total += len(json.dumps(msg, ensure_ascii=False).encode()) * 1.3  # indent
        if total >= size:
            break
    data = {
        "personal_information": {"user_id": 42, "first_name": "Mags"},
        "chats": {
            "list": [{"name": "Tobias", "type": "personal_chat", "id": 7, "messages": messages}]
        },
    }
    path = folder / "telegram" / "result.json"
    path.parent.mkdir()
    path.write_text(json.dumps(data, ensure_ascii=False, indent=1), encoding="utf-8")
    return path.parent


def write_messenger(folder: Path, size: int, rng: random.Random) -> Path:
    thread = folder / "messenger" / "messages" / "inbox" / "tobias_123"
    thread.mkdir(parents=True)
    messages, total = [], 0
    for author, text, when in sentences(rng):
        name = "Mags Okonkwo" if author == "Mags" else "Tobias M\u00fcller"
        msg = {"sender_name": name, "timestamp_ms": int(when.timestamp() * 1000), "content": text}
        messages.append(msg)
        total += len(json.dumps(msg).encode()) + 40
        if total >= size:
            break
    per_file = 10000
    chunks = [messages[::-1][i : i + per_file] for i in range(0, len(messages), per_file)]
    for n, chunk in enumerate(chunks, start=1):
        data = {
            "participants": [{"name": "Tobias M\u00fcller"}, {"name": "Mags Okonkwo"}],
            "messages": chunk,
            "title": "Tobias M\u00fcller",
            "thread_path": "inbox/tobias_123",
        }
        # Meta's mojibake: UTF-8 bytes written as \u00XX escapes
        text = json.dumps(data, indent=2, ensure_ascii=False).encode().decode("latin-1")
        (thread / f"message_{n}.json").write_text(json.dumps(json.loads(text), indent=2))
    return folder / "messenger"


def write_email(folder: Path, size: int, rng: random.Random) -> Path:
    path = folder / "mail.mbox"
    box = mailbox.mbox(path)
    total, previous = 0, None
    for i, (author, text, when) in enumerate(sentences(rng)):
        msg = EmailMessage()
        sender = "mags@example.org" if author == "Mags" else "tobias@example.com"
        msg["From"] = f"{author} <{sender}>"
        msg["To"] = "tobias@example.com" if author == "Mags" else "mags@example.org"
        msg["Subject"] = f"Re: plans {i // 5}"
        msg["Date"] = when.strftime("%a, %d %b %Y %H:%M:%S +0000")
        msg["Message-ID"] = f"<m{i}@example.org>"
        if previous:
            msg["In-Reply-To"] = previous
            msg["References"] = previous
        previous = msg["Message-ID"]
        quote = "\n".join("> " + line for line in text.split("\n"))
        msg.set_content(
            f"{text}\n\nOn {when:%a, %d %b %Y}, someone wrote:\n{quote}\n\n-- \n{author}\n"
        )
        box.add(msg)
        total += len(text) * 2 + 400
        if total >= size:
            break
    box.close()
    return path


def write_discord(folder: Path, size: int, rng: random.Random) -> Path:
    messages, total = [], 0
    for i, (author, text, when) in enumerate(sentences(rng)):
        msg = {
            "id": str(10**17 + i),
            "type": "Default",
            "timestamp": when.isoformat() + "+00:00",
            "timestampEdited": None,
            "isPinned": False,
            "content": text,
            "author": {
                "id": "1" if author == "Mags" else "2",
                "name": author.lower(),
                "nickname": author,
            },
            "attachments": [],
            "embeds": [],
            "stickers": [],
            "reactions": [],
            "mentions": [],
        }
        messages.append(msg)
        total += len(json.dumps(msg).encode()) + 110
        if total >= size:
            break
    data = {
        "guild": {"id": "0", "name": "Direct Messages"},
        "channel": {"id": "99", "type": "DirectTextChat", "name": "tobias"},
        "messages": messages,
    }
    path = folder / "discord.json"
    path.write_text(json.dumps(data, indent=2), encoding="utf-8")
    return path


def write_slack(folder: Path, size: int, rng: random.Random) -> Path:
    root = folder / "slack"
    (root / "general").mkdir(parents=True)
    users = [
        {"id": "U1", "name": "mags", "profile": {"display_name": "Mags"}},
        {"id": "U2", "name": "tobias"},
    ]
    (root / "users.json").write_text(json.dumps(users))
    (root / "channels.json").write_text(json.dumps([{"id": "C1", "name": "general"}]))
    days: dict[str, list] = {}
    total = 0
    for author, text, when in sentences(rng):
        msg = {
            "type": "message",
            "user": "U1" if author == "Mags" else "U2",
            "text": text,
            "ts": f"{when.timestamp():.6f}",
        }
        days.setdefault(f"{when:%Y-%m-%d}", []).append(msg)
        total += len(json.dumps(msg).encode()) + 40
        if total >= size:
            break
    for day, items in days.items():
        (root / "general" / f"{day}.json").write_text(json.dumps(items, indent=4))
    return root


WRITERS = {
    "whatsapp": write_whatsapp,
    "telegram": write_telegram,
    "messenger": write_messenger,
    "email": write_email,
    "discord": write_discord,
    "slack": write_slack,
}


def size_of(path: Path) -> int:
    return (
        path.stat().st_size
        if path.is_file()
        else sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
    )


def clocks() -> tuple[float, float, float]:
    """(wall seconds, CPU seconds of this process, CPU seconds of this thread): on a shared
    machine the CPU time is the steadier number, the wall time the one a user waits; with the
    memory index following on a second thread, this thread's CPU time is the wall time a
    machine with a core to spare would show."""
    return time.perf_counter(), time.process_time(), time.thread_time()


def since(start: tuple[float, float, float]) -> tuple[float, float, float]:
    wall, cpu, main = clocks()
    return wall - start[0], cpu - start[1], main - start[2]


def load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def bench_format(fmt: str, path: Path) -> dict:
    mb = size_of(path) / 1e6
    start = clocks()
    records = sum(1 for _ in get_parser(fmt).parse(path, ParseContext(me=("Mags",))))
    parse_s, parse_cpu, _ = since(start)
    with tempfile.TemporaryDirectory() as tmp, Store(Path(tmp) / "store.sqlite") as store:
        start = clocks()
        ingest_paths(store, [path], ("Mags",), fmt)
        ingest_s, ingest_cpu, _ = since(start)
    return {
        "format": fmt,
        "mb": mb,
        "messages": records,
        "parse_s": parse_s,
        "parse_cpu": parse_cpu,
        "ingest_s": ingest_s,
        "ingest_cpu": ingest_cpu,
    }


def bench_whatstk(path: Path, repeats: int) -> dict | None:
    """whatstk's parse and selftune's parse and whole ingest of one file, interleaved `repeats`
    times in this one process (medians), so both sides see the same machine load."""
    try:
        from whatstk.whatsapp.parser import df_from_whatsapp
    except ImportError:
        return None
    from selftune.memory import index as memory_index

    runs: dict[str, list[tuple[float, float, float]]] = {
        "auto": [],
        "given": [],
        "parse": [],
        "ingest": [],
        "follow": [],
    }
    counts = {}
    for _ in range(repeats):
        start = clocks()
        auto = df_from_whatsapp(str(path), max_size=None)  # how whatstk is usually called
        runs["auto"].append(since(start))
        start = clocks()
        given = df_from_whatsapp(str(path), hformat="%d/%m/%Y, %H:%M - %name:", max_size=None)
        runs["given"].append(since(start))
        start = clocks()
        ours = sum(1 for _ in get_parser("whatsapp").parse(path, ParseContext()))
        runs["parse"].append(since(start))
        # as a user gets it (the index follows on a thread only when a core is idle), then with
        # the follower on whatever the load
        for run, follow in (("ingest", "auto"), ("follow", "always")):
            memory_index.FOLLOW = follow
            with tempfile.TemporaryDirectory() as tmp, Store(Path(tmp) / "s.sqlite") as store:
                start = clocks()
                ingest_paths(store, [path], ("Mags",))
                runs[run].append(since(start))
                counts["stored"] = store.counts()["messages"]
        memory_index.FOLLOW = "auto"
        assert len(auto) == len(given)
        counts.update(whatstk_n=len(auto), selftune_n=ours)
    medians = {
        f"{name}_{kind}": statistics.median(r[i] for r in values)
        for name, values in runs.items()
        for i, kind in enumerate(("s", "cpu", "main"))
    }
    return {"mb": size_of(path) / 1e6, **counts, **medians}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--mb", type=float, default=50, help="corpus size in MB (default 50)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--repeats", type=int, default=3, help="side-by-side runs (default 3)")
    ap.add_argument("--keep", type=Path, help="write the corpus here and keep it")
    args = ap.parse_args()
    folder = args.keep or Path(tempfile.mkdtemp(prefix="selftune-bench-"))
    folder.mkdir(parents=True, exist_ok=True)
    rng = random.Random(args.seed)
    print(f"Writing a {args.mb:g} MB corpus to {folder} …", flush=True)
    paths = {
        fmt: write(folder, int(args.mb * 1e6 * SHARES[fmt]), rng) for fmt, write in WRITERS.items()
    }
    total = sum(size_of(p) for p in paths.values()) / 1e6
    print(f"cpu: {os.cpu_count()} cores; corpus: {total:.1f} MB; load average {load()}\n")
    print(
        "| format | MB | messages | parse s (CPU s) | parse MB/s | ingest s (CPU s) | ingest MB/s |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|")
    rows = [bench_format(fmt, path) for fmt, path in paths.items()]
    for r in rows:
        print(
            f"| {r['format']} | {r['mb']:.1f} | {r['messages']:,} | {r['parse_s']:.2f} "
            f"({r['parse_cpu']:.2f}) | {r['mb'] / r['parse_s']:.1f} | {r['ingest_s']:.2f} "
            f"({r['ingest_cpu']:.2f}) | {r['mb'] / r['ingest_s']:.1f} |"
        )
    print(f"\nload average after the formats: {load()}")
    with tempfile.TemporaryDirectory() as tmp, Store(Path(tmp) / "store.sqlite") as store:
        start = clocks()
        ingest_paths(store, list(paths.values()), ("Mags",))
        seconds, cpu, _ = since(start)
        stored = store.counts()["messages"]
    print(
        f"\nall formats, one `ingest` (detection included): {total:.1f} MB, {stored:,} messages in"
        f" {seconds:.1f} s wall, {cpu:.1f} s CPU ({total / seconds:.1f} MB/s); load average {load()}"
    )
    peer = bench_whatstk(paths["whatsapp"], args.repeats)
    if peer is None:
        print("\nwhatstk is not installed; skipped the side-by-side run")
    else:
        ratio = peer["ingest_s"] / peer["auto_s"]
        ratio_cpu = peer["ingest_cpu"] / peer["auto_cpu"]
        print(
            f"\nsame WhatsApp file ({peer['mb']:.1f} MB; {peer['selftune_n']:,} messages by "
            f"selftune, {peer['whatstk_n']:,} by whatstk), medians of {args.repeats} interleaved "
            f"runs; load average {load()}:\n"
            "| run | wall s | CPU s | main-thread CPU s |\n|---|---:|---:|---:|\n"
            + "".join(
                f"| {label} | {peer[k + '_s']:.2f} | {peer[k + '_cpu']:.2f} | {peer[k + '_main']:.2f} |\n"
                for k, label in (
                    ("auto", "whatstk parse, header detected (its default)"),
                    ("given", "whatstk parse, header format given by hand"),
                    ("parse", "selftune parse (records with ids, kinds, owner)"),
                    ("ingest", "selftune whole ingest into a fresh store"),
                    ("follow", "selftune whole ingest, index follower forced on"),
                )
            )
            + f"\nwhole ingest / whatstk's parse: {ratio:.2f} wall, {ratio_cpu:.2f} CPU; "
            f"follower on: {peer['follow_s'] / peer['auto_s']:.2f} wall, "
            f"{peer['follow_main'] / peer['auto_cpu']:.2f} main-thread CPU"
        )
    if not args.keep:
        shutil.rmtree(folder)


if __name__ == "__main__":
    main()
