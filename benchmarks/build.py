"""Build throughput: `selftune build` on a generated 50 MB store (target: under 60 s on 2 cores).

    PYTHONPATH=src python benchmarks/build.py                      # 50 MB corpus (the default)
    PYTHONPATH=src python benchmarks/build.py --mb 5               # a quick run
    PYTHONPATH=src python benchmarks/build.py --keep-store /tmp/b  # keep the workspace to rerun
    PYTHONPATH=src python benchmarks/build.py --workspace /tmp/b   # rerun on a kept workspace

The corpus is the ingest benchmark's (a decade of chats across six apps in their real export
layouts, see benchmarks/ingest.py) plus Markdown notes with nested lists, ingested once into a
fresh workspace. Only the build is timed: reading the store, sessions, scrubbing, token counting
with the embedded model's tokenizer, windows, filters, split, and writing the files.
"""

from __future__ import annotations

import argparse
import cProfile
import os
import pstats
import random
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

import ingest as corpus  # noqa: E402  (the ingest benchmark's corpus writers)
from selftune.dataset import run_build  # noqa: E402
from selftune.ingest.importer import ingest_paths  # noqa: E402
from selftune.workspace import Workspace, find_workspace, init_workspace  # noqa: E402

NOTE_SHARE = 0.05


def write_notes(folder: Path, size: int, rng: random.Random) -> Path:
    """Markdown notes with headings, nested lists and links, `size` bytes in all."""
    notes = folder / "notes"
    notes.mkdir()
    total, n = 0, 0
    while total < size:
        lines = [f"# note {n}", ""]
        for h in range(rng.randint(1, 4)):
            lines += [f"## part {h}"]
            for _ in range(rng.randint(2, 12)):
                lines.append("- " + " ".join(rng.choices(corpus.WORDS, k=rng.randint(3, 15))))
                for _ in range(rng.randint(0, 3)):
                    lines.append("    - [[note 1]] " + " ".join(rng.choices(corpus.WORDS, k=6)))
            lines.append("")
        text = "\n".join(lines)
        (notes / f"note {n}.md").write_text(text, encoding="utf-8")
        total += len(text.encode())
        n += 1
    return notes


def make_workspace(root: Path, mb: float, seed: int) -> Workspace:
    rng = random.Random(seed)
    exports = root / "exports"
    exports.mkdir(parents=True)
    paths = [
        write(exports, int(mb * 1e6 * (1 - NOTE_SHARE) * corpus.SHARES[fmt]), rng)
        for fmt, write in corpus.WRITERS.items()
    ]
    paths.append(write_notes(exports, int(mb * 1e6 * NOTE_SHARE), rng))
    size = sum(corpus.size_of(p) for p in paths) / 1e6
    ws = init_workspace(root / "twin", ["Mags", "Mags Okonkwo", "mags@example.org"])
    start = time.perf_counter()
    with ws.open_store() as store:
        ingest_paths(store, paths, tuple(ws.config.me))
        counts = store.counts()
    print(
        f"corpus {size:.1f} MB: {counts['messages']} messages ({counts['my_messages']} yours), "
        f"{counts['notes']} notes; ingested in {time.perf_counter() - start:.1f} s"
    )
    shutil.rmtree(exports)
    return ws


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--mb", type=float, default=50, help="corpus size in MB (default 50)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--keep-store", type=Path, help="make the workspace here and keep it")
    ap.add_argument("--workspace", type=Path, help="reuse a workspace made with --keep-store")
    ap.add_argument("--profile", action="store_true", help="print the 20 costliest functions")
    args = ap.parse_args()
    if args.workspace:
        ws = find_workspace(args.workspace / "twin")
    else:
        root = args.keep_store or Path(tempfile.mkdtemp(prefix="selftune-build-bench-"))
        ws = make_workspace(root, args.mb, args.seed)
    print(f"cpu: {os.cpu_count()} cores; load average {os.getloadavg()[0]:.1f}")
    from selftune.models import load_tokenizer

    load_tokenizer(ws.config.train.base)  # converts the embedded model once, outside the timing
    profiler = cProfile.Profile() if args.profile else None
    start, cpu_start = time.perf_counter(), time.process_time()
    if profiler:
        profiler.enable()
    info, dataset_id = run_build(ws)
    if profiler:
        profiler.disable()
    seconds, cpu = time.perf_counter() - start, time.process_time() - cpu_start
    folder = ws.datasets_dir / str(dataset_id)
    mb = sum(p.stat().st_size for p in folder.iterdir()) / 1e6
    print(
        f"build: {seconds:.1f} s wall, {cpu:.1f} s CPU (all threads), load average now "
        f"{os.getloadavg()[0]:.1f} → {info['train']['examples']} train / {info['valid']['examples']}"
        f" valid examples, {info['train']['tokens'] + info['valid']['tokens']} tokens, {mb:.1f} MB"
        f" of files\nleft out: {info['filtered']}\nscrubbed: {info['pii']}"
    )
    if profiler:
        pstats.Stats(profiler).sort_stats("cumulative").print_stats(20)
    if not (args.keep_store or args.workspace):
        shutil.rmtree(ws.root.parent)


if __name__ == "__main__":
    main()
