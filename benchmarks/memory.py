"""Memory and facts: index build time and size at scale, retrieval latency per reply, and on the
bundled example fact accuracy and held-out perplexity with vs without memory.

    PYTHONPATH=src python benchmarks/memory.py                  # 50 MB corpus + the example
    PYTHONPATH=src python benchmarks/memory.py --mb 5 --skip-model
    PYTHONPATH=src python benchmarks/memory.py --skip-scale --run RUN_DIR   # a trained twin
    PYTHONPATH=src python benchmarks/memory.py --mb 0 --skip-model          # the 300k store only

Scale: the generated corpus of benchmarks/ingest.py (same writers, same seed) is ingested with
the index switched off, then the whole index is built once (time, and the bytes the memory
tables add to store.sqlite), then `memory_block` is timed for replies to stored messages: at use
time (everything before now) and at build time (only what came before each message). The corpus
has a small vocabulary, so every word matches many messages: a worst case for the index.

Model: the example person (examples/marguerite, with its facts.yaml) is built with memory on,
and the facts and memory section of `selftune eval` runs on the embedded base model (or on the
tuned model of --run): each public fact asked as a friend would, with and without memory.
The load average is printed next to every number (the machine is shared).
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import statistics
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
REPO = Path(__file__).resolve().parent.parent
EXAMPLE = REPO / "examples" / "marguerite"


def load() -> str:
    one, five, _ = os.getloadavg()
    return f"load {one:.1f}/{five:.1f}"


def memory_bytes(store) -> int:  # type: ignore[no-untyped-def]
    """Bytes of the memory's tables and indexes (SQLite's dbstat)."""
    try:
        rows = store.db.execute(
            "SELECT sum(pgsize) FROM dbstat WHERE name LIKE 'memory%'"
        ).fetchone()
        return int(rows[0] or 0)
    except Exception:  # dbstat is compiled out of some SQLite builds
        return -1


def zipf_messages(n: int, seed: int):  # type: ignore[no-untyped-def]
    """`n` chat messages with a natural vocabulary: 30,000 made-up words drawn by Zipf's law
    (exponent 1.1), 300 contacts in one-to-one chats, ten years; half are the owner's."""
    from datetime import timedelta

    from selftune.records import Message

    rng = random.Random(seed)
    syllables = [a + b for a in "bdfgklmnprstvz" for b in "aeiou"]
    vocab = sorted({"".join(rng.choices(syllables, k=rng.randint(1, 4))) for _ in range(40000)})
    vocab = vocab[:30000]
    rng.shuffle(vocab)
    from itertools import accumulate

    cumulative = list(accumulate(1 / (r + 1) ** 1.1 for r in range(len(vocab))))
    start = datetime(2015, 1, 1).astimezone()
    for i in range(n):
        contact = f"Contact {i % 300}"
        mine = rng.random() < 0.5
        yield Message(
            source="whatsapp",
            conversation_id=f"whatsapp:{contact}",
            conversation_title=contact,
            timestamp=start + timedelta(seconds=i * 1000 + rng.randint(0, 999)),
            author="Mags" if mine else contact,
            text=" ".join(rng.choices(vocab, cum_weights=cumulative, k=rng.randint(3, 15))),
            is_me=mine,
            conversation_kind="direct",
        )


def scale(mb: float, seed: int, replies: int, zipf: int = 0) -> None:
    import selftune.memory as memory_pkg
    from ingest import SHARES, WRITERS  # benchmarks/ingest.py
    from selftune.config import MemoryConfig
    from selftune.ingest.importer import ingest_paths
    from selftune.memory import Moment, memory_block
    from selftune.memory.facts import Facts
    from selftune.memory.index import update_index
    from selftune.store import Store

    folder = Path(tempfile.mkdtemp(prefix="selftune-memory-"))
    try:
        store = Store(folder / "store.sqlite")
        started = time.perf_counter()
        if zipf:
            mb = 0
            store.add_messages(zipf_messages(zipf, seed))
            what = f"generated store ({zipf} messages, Zipf vocabulary)"
        else:
            rng = random.Random(seed)
            paths = [write(folder, int(mb * 1e6 * SHARES[f]), rng) for f, write in WRITERS.items()]
            real_hook = memory_pkg.on_ingest
            memory_pkg.on_ingest = lambda _store: 0  # time the index on its own, below
            ingest_paths(store, paths, ("Mags",))
            memory_pkg.on_ingest = real_hook
            what = f"corpus {mb:g} MB of benchmarks/ingest.py"
        ingest_s = time.perf_counter() - started
        n = store.counts()["messages"]
        store.db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        size_before = (folder / "store.sqlite").stat().st_size
        started = time.perf_counter()
        indexed = update_index(store)
        index_s = time.perf_counter() - started
        store.db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        size_after = (folder / "store.sqlite").stat().st_size
        print(
            f"{what}: {n} messages stored in {ingest_s:.1f} s (index off); "
            f"index of {indexed} messages built in {index_s:.1f} s "
            f"({indexed / index_s:,.0f} messages/s), {load()}"
        )
        print(
            f"  store.sqlite {size_before / 1e6:.1f} MB → {size_after / 1e6:.1f} MB "
            f"(memory tables {memory_bytes(store) / 1e6:.1f} MB per dbstat)"
        )
        started = time.perf_counter()
        store.add_messages([])  # nothing new: an incremental update is a no-op
        noop = update_index(store)
        print(f"  incremental update with nothing new: {noop} rows, "
              f"{(time.perf_counter() - started) * 1000:.1f} ms")  # fmt: skip

        rows = store.db.execute(
            "SELECT text, timestamp, conversation_id, author, conversation_title FROM messages"
            " WHERE coalesce(is_me, 0) = 0 AND kind = 'text' ORDER BY random() LIMIT ?",
            (replies,),
        ).fetchall()
        settings, facts = MemoryConfig(), Facts([])
        now = datetime.now().astimezone()
        for label, at in (("use time (all before now)", None), ("build time (its own past)", 1)):
            times, sizes, found = [], [], 0
            for text, ts, cid, author, _ in rows:
                before = now if at is None else datetime.fromisoformat(ts)
                moment = Moment(text, before, cid, (author,))
                started = time.perf_counter()
                block = memory_block(store, facts, settings, moment, "Mags")
                times.append((time.perf_counter() - started) * 1000)
                sizes.append(block.tokens)
                found += bool(block.exchanges)
            times.sort()
            p95 = times[int(0.95 * (len(times) - 1))]
            print(
                f"  memory_block at {label}: median {statistics.median(times):.1f} ms, "
                f"p95 {p95:.1f} ms, max {times[-1]:.1f} ms over {len(times)} replies "
                f"(mean block {statistics.mean(sizes):.0f} tokens est., past exchanges found "
                f"for {found}), {load()}"
            )
        # the whole use-time path of `reply` / `/v1/reply`: open the store, bring the index up
        # to date, find the conversation by its title, build the block
        from selftune.memory import Memory
        from selftune.twin import Twin

        memory = Memory(store.path, facts, settings, Twin(("Mags",), "You are {owner}."))
        times = []
        for text, _, _, author, title in rows:
            started = time.perf_counter()
            memory.for_turns([(author, text)], "whatsapp", title)
            times.append((time.perf_counter() - started) * 1000)
        times.sort()
        print(
            f"  Memory.for_turns (reply, store opened each time): median "
            f"{statistics.median(times):.1f} ms, p95 {times[int(0.95 * (len(times) - 1))]:.1f} ms,"
            f" max {times[-1]:.1f} ms over {len(times)} replies, {load()}"
        )
        store.close()
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def model(run_dir: Path | None, contexts: int) -> None:
    from selftune.config import EvalConfig
    from selftune.dataset import run_build
    from selftune.evaluation.compared_models import Side, load_sides
    from selftune.evaluation.sections.facts_recall import memory_section
    from selftune.ingest.importer import ingest_paths
    from selftune.models import load_model, load_tokenizer
    from selftune.workspace import init_workspace

    root = Path(tempfile.mkdtemp(prefix="selftune-memory-ws-"))
    try:
        ws = init_workspace(root / "mags", ["Mags"])
        shutil.copy(EXAMPLE / "facts.yaml", ws.root / "facts.yaml")
        with ws.open_store() as store:
            ingest_paths(store, [EXAMPLE / "whatsapp", EXAMPLE / "notes"], ("Mags",))
        started = time.perf_counter()
        card, dataset_id = run_build(ws)
        print(f"example built with memory in {time.perf_counter() - started:.1f} s, {load()}")
        from selftune.artefacts import read_split

        train = read_split(ws.datasets_dir / dataset_id, "train")
        valid = read_split(ws.datasets_dir / dataset_id, "valid")
        if run_dir is not None:
            _, side = load_sides(run_dir)
            name = f"tuned run {run_dir.name}"
        else:
            side = Side("base", load_model("embedded"), load_tokenizer("embedded"), True)
            name = "embedded base model (SmolLM2-135M-Instruct, not tuned)"
        settings = EvalConfig(contexts=contexts, candidates=2, max_new_tokens=40, temperature=0.7)
        started = time.perf_counter()
        out = memory_section(ws, side, side, train, valid, settings, ws.config.train.max_seq_len)
        print(
            f"\n{name}: facts and memory section in {time.perf_counter() - started:.0f} s, {load()}"
        )
        probes = out["fact_probes"]
        for key in ("without", "with"):
            print(
                f"  {key:7} memory: facts stated in {probes['states'][key]:.0%} of answers, "
                f"contradicted in {probes['contradicts'][key]:.0%} ({probes['probes']} facts x 2)"
            )
        for row in probes["rows"]:
            print(
                f"    {row['question']:45} with {row['with']['states']}/2 "
                f"without {row['without']['states']}/2  (fact in block: {row['in_memory']})"
            )
            print(f"      with: {row['with']['answers'][0][:90]!r}")
        ppl = out.get("perplexity", {})
        if ppl:
            print(
                f"  held-out perplexity ({ppl['examples']} examples, {ppl['with_a_block']} with a "
                f"block): with memory {ppl['with']:.2f}, without {ppl['without']:.2f}"
            )
        auth = out.get("authorship", {})
        if auth:
            print(
                "  authorship, taken for Mags: with memory "
                f"{auth['with']['taken_for_owner']}, without {auth['without']['taken_for_owner']}"
            )
        private = out["private"]
        print(
            f"  private facts: {private['answers_with_a_private_fact']} of "
            f"{private['answers_checked']} raw answers hold one ({private['asked_for']} asked for)"
        )
    finally:
        shutil.rmtree(root, ignore_errors=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument(
        "--mb", type=float, default=50, help="corpus size in MB (default 50; 0 skips it)"
    )
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--replies", type=int, default=300, help="replies timed (default 300)")
    ap.add_argument(
        "--zipf", type=int, default=300_000, help="messages of the generated store (0: skip it)"
    )
    ap.add_argument("--contexts", type=int, default=8, help="held-out contexts for authorship")
    ap.add_argument("--run", type=Path, help="a finished run folder to test instead of the base")
    ap.add_argument("--skip-scale", action="store_true")
    ap.add_argument("--skip-model", action="store_true")
    args = ap.parse_args()
    print(f"cpu: {os.cpu_count()} cores, {load()}")
    if not args.skip_scale:
        if args.mb > 0:
            scale(args.mb, args.seed, args.replies)
        if args.zipf:
            scale(0, args.seed, args.replies, zipf=args.zipf)
    if not args.skip_model:
        model(args.run, args.contexts)


if __name__ == "__main__":
    main()
