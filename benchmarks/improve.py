"""Amplify and distill with a simulated owner, on the bundled example person.

Run: PYTHONPATH=src python benchmarks/improve.py [--rounds 3] [--prompts 12] [-n 4]
     [--train-minutes 4] [--distill-minutes 2] [--contexts 16] [--out results.json]
     [--owner closest|random|trait] [--trait shortest|emoji|lowercase] [--seeds 2]
     [--exports PATH ... --me NAME]  (someone else's exports)

A temporary workspace ingests examples/marguerite, builds, and trains a first twin (the cpu
preset, `--train-minutes`). Then, each round:
1. `run_amplify` on chat prompts from the training split (a fresh seed each round);
2. the simulated owner keeps the candidate closest to their real reply (character 2-4-gram
   cosine similarity) and gives the farthest a thumbs down (`--owner random`: a control owner
   who keeps and rejects at random, so what distill gains from replay alone shows; `--owner
   trait`: an owner with a known preference the model can express — keeps the shortest
   candidate, or one with an emoji, or the one in lowercase — the trait chosen per run from
   the seed unless `--trait` names it, and rejects the candidate furthest from it);
3. `run_distill` (method auto) trains the next twin from the current one; the ranker is retrained;
4. on held-out contexts (the validation split, never amplified), parent and child each write a
   reply with the same seed, and the simulated owner picks the closer one blind: the child's
   win rate (ties count half); held-out perplexity and the authorship classifier's share of
   replies taken for the owner, parent vs child; the trait's share in those fresh held-out
   replies, parent vs child and against the first twin, each with its standard error (every
   owner is measured on the same trait, so the random control shows what replay alone does
   to it; "shortest" means at most the first twin's median word count, fixed for the whole
   run, so gains add up over rounds), and the mean words per reply; the ranker's held-out
   pairwise accuracy beside the authorship score alone; CPU minutes of this process (all
   threads) and the load average.
A twin's replies are written once (seeded) and reused: round r's child is round r+1's parent,
and every owner starts from the same first twin. At the end, each round's trait owner is
compared with the random control's child of the same round: the difference in trait share,
its standard error, and how many standard errors that is.
The machine is shared: keep rounds small and read the load average beside every number.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import re
import shutil
import statistics
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def grams(text: str) -> Counter:
    t = " ".join(text.lower().split())
    return Counter(t[i : i + n] for n in (2, 3, 4) for i in range(max(0, len(t) - n + 1)))


def similarity(a: str, b: str) -> float:
    """Cosine similarity of character 2-4-gram counts (0 for empty text)."""
    ga, gb = grams(a), grams(b)
    dot = sum(v * gb[k] for k, v in ga.items())
    norm = math.sqrt(sum(v * v for v in ga.values())) * math.sqrt(sum(v * v for v in gb.values()))
    return dot / norm if norm else 0.0


EMOJI = re.compile("[\U0001f300-\U0001faff\u2600-\u27bf]")
TRAITS = ("shortest", "emoji", "lowercase")
OWNERS = ("closest", "random", "trait")


def trait_score(trait: str, text: str) -> float:
    """How much a candidate has the trait (higher: more): fewer words, an emoji, lowercase."""
    if trait == "shortest":
        return -len(text.split())
    if trait == "emoji":
        return len(EMOJI.findall(text)) - len(text) / 1000  # ties: the shorter
    letters = [c for c in text if c.isalpha()]
    return 1 - sum(c.isupper() for c in letters) / len(letters) if letters else 0.0


def has_trait(trait: str, text: str, short: int) -> bool:
    """A reply has the trait: at most `short` words (the parent's median), an emoji, or no
    capital letter."""
    if trait == "shortest":
        return len(text.split()) <= short
    if trait == "emoji":
        return bool(EMOJI.search(text))
    return bool(text.strip()) and not any(c.isupper() for c in text)


def share_with_se(flags: list[bool]) -> tuple[float, float]:
    n = len(flags)
    p = sum(flags) / n if n else 0.0
    return round(p, 3), round(math.sqrt(p * (1 - p) / n) if n else 0.0, 3)


def mean_with_se(values: list[float]) -> tuple[float, float]:
    if len(values) < 2:
        return (round(values[0], 2) if values else 0.0), 0.0
    return round(statistics.fmean(values), 3), round(
        statistics.stdev(values) / math.sqrt(len(values)), 3
    )


class Measured:
    """Each twin's held-out replies (seeds 1..k over the same contexts) and perplexity, written
    once per run id: a child is the next round's parent, and every owner starts from the same
    first twin."""

    def __init__(self, contexts, valid, seeds: int, max_tokens: int, max_len: int, first: str):
        self.contexts, self.valid, self.seeds = contexts, valid, tuple(range(1, seeds + 1))
        self.first = first  # the first twin's run id, shared by every owner's copy
        self.max_tokens, self.max_len = max_tokens, max_len
        self._replies: dict[str, list[list[str]]] = {}
        self._ppl: dict[str, float] = {}

    def key(self, owner: str, run_id: str) -> str:
        """Runs after the first are per owner (each owner's copy names its children alike)."""
        return run_id if run_id == self.first else f"{owner}/{run_id}"

    def replies(self, run_id: str, engine) -> list[list[str]]:
        if run_id not in self._replies:
            self._replies[run_id] = [
                replies(engine, self.contexts, seed, self.max_tokens) for seed in self.seeds
            ]
        return self._replies[run_id]

    def ppl(self, run_id: str, engine) -> float:
        if run_id not in self._ppl:
            self._ppl[run_id] = held_out_ppl(engine, self.valid, self.max_len)
        return self._ppl[run_id]


def load() -> str:
    return "{:.2f} {:.2f} {:.2f}".format(*os.getloadavg())


def setup(root: Path, train_minutes: float, echo, exports: list[Path], me: list[str]) -> object:
    from selftune.dataset import run_build
    from selftune.demo import example_dir
    from selftune.ingest.importer import ingest_paths
    from selftune.training import run_train
    from selftune.workspace import init_workspace

    paths = exports or [example_dir() / "whatsapp", example_dir() / "notes"]
    ws = init_workspace(root / "twin", me)
    with ws.open_store() as store:
        ingest_paths(store, paths, tuple(me))
    run_build(ws)
    run_train(ws, preset="cpu", overrides={"minutes": train_minutes}, echo=echo)
    return ws


def replies(engine, contexts, seed: int, max_tokens: int) -> list[str]:
    from selftune.engines.base import GenRequest, render_chat

    out = []
    for start in range(0, len(contexts), 8):
        chunk = contexts[start : start + 8]
        requests = [
            GenRequest(
                render_chat(engine.tokenizer, c["context"]), 1, 0.8, 0.95, max_tokens, seed=seed
            )
            for c in chunk
        ]
        out += [r.texts[0].strip() for r in engine.generate(requests)]
    return out


def held_out_ppl(engine, valid, max_len: int) -> float:
    """Perplexity of the owner's held-out tokens under the engine's (merged) model."""
    from selftune.evaluation.perplexity import perplexities

    return round(
        perplexities(engine.model, engine.tokenizer, valid, max_len)["all"]["perplexity"], 3
    )


def one_round(ws, r: int, owner: str, args, measured, short: int, classifier, echo) -> dict:
    from selftune.engines.transformers_engine import TransformersEngine
    from selftune.improve import run_amplify, run_distill, train_ranker
    from selftune.improve.prompts import training_prompts
    from selftune.scoring.authorship import taken_for_owner
    from selftune.store.samples import SampleLog

    cpu0, wall0, load0 = time.process_time(), time.monotonic(), load()
    contexts = measured.contexts
    parent = ws.artefacts.run()
    train = ws.artefacts.dataset_of(parent).read_split("train")
    prompts = [p for p in training_prompts(train, 4 * args.prompts, seed=r) if p.kind == "chat"]
    prompts = prompts[: args.prompts]
    prompt_file = Path(ws.root) / f"round{r}.jsonl"
    prompt_file.write_text("".join(json.dumps({"messages": p.messages}) + "\n" for p in prompts))
    parent_engine = TransformersEngine.from_run(parent.path, parent.id)
    items = run_amplify(
        ws, prompt_file, n=args.n, max_tokens=args.max_tokens, engine=parent_engine, seed=100 * r
    )
    log = SampleLog(ws.store_path)
    rng = random.Random(r)
    for item, prompt in zip(items, prompts, strict=True):
        scores = [similarity(c, prompt.real or "") for c in item["candidates"]]
        if owner == "trait":
            scores = [trait_score(args.trait, c) + 1e-6 * rng.random() for c in item["candidates"]]
        if owner == "random":  # the control: picks that carry no preference
            scores = [rng.random() for _ in scores]
        best, worst = (
            max(range(len(scores)), key=scores.__getitem__),
            min(range(len(scores)), key=scores.__getitem__),
        )
        log.pick(item["sample_id"], best)
        if worst != best:
            log.rate(item["sample_id"], worst, -1)
    echo(f"{owner} round {r}: amplified {len(items)} prompts x {args.n}, picked")
    summary, child_dir = run_distill(ws, minutes=args.distill_minutes, echo=echo)
    try:
        info = train_ranker(ws).info
        ranker_acc, authorship_alone = info["held_out_accuracy"], info["authorship_alone_accuracy"]
    except Exception as exc:  # too few picks in round 1 for a held-out pair is possible
        ranker_acc, authorship_alone = f"n/a ({exc})", None
    child_engine = TransformersEngine.from_run(child_dir, child_dir.name)
    wins, win_flags = 0.0, []
    parent_key, child_key = measured.key(owner, parent.id), measured.key(owner, child_dir.name)
    parent_by_seed = measured.replies(parent_key, parent_engine)
    child_by_seed = measured.replies(child_key, child_engine)
    for p, c in zip(parent_by_seed, child_by_seed, strict=True):
        for ctx, a, b in zip(contexts, p, c, strict=True):
            sa, sb = similarity(a, ctx["real"]), similarity(b, ctx["real"])
            win = 1.0 if sb > sa else 0.5 if sb == sa else 0.0
            wins += win
            win_flags.append(win)
    parent_replies = [t for seed in parent_by_seed for t in seed]
    child_replies = [t for seed in child_by_seed for t in seed]
    trait_parent = share_with_se([has_trait(args.trait, t, short) for t in parent_replies])
    trait_child = share_with_se([has_trait(args.trait, t, short) for t in child_replies])
    first_replies = [t for seed in measured.replies(measured.first, None) for t in seed]
    trait_first = share_with_se([has_trait(args.trait, t, short) for t in first_replies])
    row = {
        "owner": owner,
        "round": r,
        "parent": parent.id,
        "child": child_dir.name,
        "method": summary["distill"]["method"],
        "kept": summary["distill"]["counts"]["kept"],
        "pairs": summary["distill"]["counts"]["pairs"],
        "replayed": summary["distill"]["replayed"],
        "steps": {k: v["steps"] for k, v in summary["distill"]["phases"].items()},
        "win_rate": round(wins / (len(contexts) * len(measured.seeds)), 3),
        "win_rate_se": mean_with_se(win_flags)[1],
        "blind_pairs": len(contexts) * len(measured.seeds),
        "ppl_parent": measured.ppl(parent_key, parent_engine),
        "ppl_child": measured.ppl(child_key, child_engine),
        "authorship_parent": taken_for_owner(classifier, parent_replies)["taken_for_owner"],
        "authorship_child": taken_for_owner(classifier, child_replies)["taken_for_owner"],
        "trait": args.trait,
        "trait_parent": trait_parent,  # (share, standard error)
        "trait_child": trait_child,
        "trait_gain": round(trait_child[0] - trait_parent[0], 3),
        "trait_gain_se": round(math.hypot(trait_parent[1], trait_child[1]), 3),
        "trait_first": trait_first,  # the first twin's share: the child's gain over all rounds
        "short_words": short,  # "shortest": at most this many words (the first twin's median)
        "words_parent": mean_with_se([len(t.split()) for t in parent_replies]),
        "words_child": mean_with_se([len(t.split()) for t in child_replies]),
        "ranker_accuracy": ranker_acc,
        "authorship_alone_accuracy": authorship_alone,
        "cpu_minutes": round((time.process_time() - cpu0) / 60, 1),
        "wall_minutes": round((time.monotonic() - wall0) / 60, 1),
        "load_start": load0,
        "load_end": load(),
    }
    echo(json.dumps(row))
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--prompts", type=int, default=12)
    parser.add_argument("-n", type=int, default=4)
    parser.add_argument("--max-tokens", type=int, default=40)
    parser.add_argument("--train-minutes", type=float, default=4)
    parser.add_argument("--distill-minutes", type=float, default=2)
    parser.add_argument("--contexts", type=int, default=16)
    parser.add_argument(
        "--owner",
        default="closest",
        help="closest: keep the candidate nearest the real reply; random: a control owner; "
        "trait: keep the candidate with --trait; several, comma-separated (trait,random), run "
        "side by side from the same first twin (a copy of its workspace each)",
    )
    parser.add_argument(
        "--trait",
        choices=TRAITS,
        help="the known preference (measured for every owner); default: chosen by --seed",
    )
    parser.add_argument("--seed", type=int, default=0, help="chooses the trait when not given")
    parser.add_argument(
        "--seeds", type=int, default=2, help="replies per held-out context, parent and child"
    )
    parser.add_argument(
        "--exports",
        type=Path,
        nargs="*",
        default=[],
        help="someone else's exports (files or folders) instead of the bundled example",
    )
    parser.add_argument(
        "--me",
        action="append",
        help="the owner's names in those exports (repeatable; default Mags)",
    )
    parser.add_argument("--beta", type=float, help="improve.beta for distill (default: config's)")
    parser.add_argument(
        "--lr", type=float, help="improve.learning_rate for distill (default: config's)"
    )
    parser.add_argument("--replay", type=float, help="improve.replay (default: config's)")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    args.trait = args.trait or random.Random(args.seed).choice(TRAITS)
    owners = args.owner.split(",")
    if unknown := [o for o in owners if o not in OWNERS]:
        parser.error(f"--owner {','.join(unknown)}: choose from {', '.join(OWNERS)}")
    os.environ.setdefault("TQDM_DISABLE", "1")

    from selftune.evaluation.sections.replies import held_out_contexts
    from selftune.scoring import authorship
    from selftune.workspace import find_workspace

    def echo(msg: str) -> None:
        print(msg, file=sys.stderr, flush=True)

    started = time.process_time()
    with tempfile.TemporaryDirectory() as tmp:
        ws = setup(Path(tmp), args.train_minutes, echo, args.exports, args.me or ["Mags"])
        first = ws.artefacts.run()
        dataset = ws.artefacts.dataset_of(first)
        train, valid = dataset.read_split("train"), dataset.read_split("valid")
        contexts = held_out_contexts(valid, args.contexts, 0)
        classifier = authorship.fit(*authorship.chat_messages(train))
        ws.config.improve.held_out = 0.2
        measured = Measured(
            contexts, valid, args.seeds, args.max_tokens, ws.config.train.max_seq_len, first.id
        )
        from selftune.engines.transformers_engine import TransformersEngine

        first_replies = measured.replies(
            first.id, TransformersEngine.from_run(first.path, first.id)
        )
        short = int(statistics.median(len(t.split()) for seed in first_replies for t in seed))
        echo(
            f"first twin {first.id}; {len(contexts)} held-out contexts; median reply {short} "
            f"words; load {load()}"
        )
        rows = []
        for owner in owners:  # each from the same first twin, in its own copy of the workspace
            copy = find_workspace(shutil.copytree(ws.root, Path(tmp) / owner))
            copy.config.improve.held_out = 0.2
            for key, value in (
                ("beta", args.beta),
                ("learning_rate", args.lr),
                ("replay", args.replay),
            ):
                if value is not None:
                    setattr(copy.config.improve, key, value)
            for r in range(1, args.rounds + 1):
                copy.config.improve.seed = r
                rows.append(one_round(copy, r, owner, args, measured, short, classifier, echo))
                rows[-1]["improve"] = {
                    k: getattr(copy.config.improve, k) for k in ("beta", "learning_rate", "replay")
                }
    controls = {row["round"]: row for row in rows if row["owner"] == "random"}
    versus = []
    for row in rows:
        control = controls.get(row["round"])
        if row["owner"] == "random" or control is None:
            continue
        diff = row["trait_child"][0] - control["trait_child"][0]
        se = math.hypot(row["trait_child"][1], control["trait_child"][1])
        versus.append(
            {
                "owner": row["owner"],
                "round": row["round"],
                "trait_share": row["trait_child"][0],
                "control_share": control["trait_child"][0],
                "difference": round(diff, 3),
                "se": round(se, 3),
                "standard_errors": round(diff / se, 1) if se else None,
            }
        )
    result = {
        "settings": vars(args)
        | {"out": str(args.out) if args.out else None, "exports": [str(p) for p in args.exports]},
        "rounds": rows,
        "versus_control": versus,
        "cpu_minutes_total": round((time.process_time() - started) / 60, 1),
        "cores": len(os.sched_getaffinity(0)),
    }
    print(json.dumps(result, indent=2))
    if args.out:
        args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(
        f"\n| round | owner | method | kept | pairs | win rate vs parent | ppl parent → child | authorship parent → child | {args.trait} share first → parent → child (± SE) | words parent → child (± SE) | ranker acc (authorship alone) | CPU min | wall min | load (start/end) |"
    )
    print("|---:|---|---|---:|---:|---:|---|---|---|---|---:|---:|---:|---|")
    for row in rows:
        print(
            f"| {row['round']} | {row['owner']} | {row['method']} | {row['kept']} | {row['pairs']} | "
            f"{row['win_rate']} ± {row['win_rate_se']} ({row['blind_pairs']} pairs) | {row['ppl_parent']} → {row['ppl_child']} | "
            f"{row['authorship_parent']} → {row['authorship_child']} | "
            f"{row['trait_first'][0]} → {row['trait_parent'][0]} → {row['trait_child'][0]} (±{row['trait_child'][1]}) | "
            f"{row['words_parent'][0]} → {row['words_child'][0]} (±{row['words_child'][1]}) | "
            f"{row['ranker_accuracy']} ({row['authorship_alone_accuracy']}) | "
            f"{row['cpu_minutes']} | {row['wall_minutes']} | {row['load_start']} / {row['load_end']} |"
        )
    if versus:
        print(f"\n| round | owner | {args.trait} share | random control | difference ± SE | SEs |")
        print("|---:|---|---:|---:|---|---:|")
        for v in versus:
            print(
                f"| {v['round']} | {v['owner']} | {v['trait_share']} | {v['control_share']} | "
                f"{v['difference']:+} ± {v['se']} | {v['standard_errors']} |"
            )


if __name__ == "__main__":
    main()
