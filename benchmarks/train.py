"""Training throughput: `selftune train` against a naive transformers + PEFT reference.

Run: PYTHONPATH=src python benchmarks/train.py [--steps-ref 8] [--steps-selftune 4] [--rounds 1]

Both train the same LoRA (all-linear, r16) on the same data (the bundled example person, built
with `selftune build` in a temporary workspace) and the same base model (the embedded
SmolLM2-135M-Instruct). The reference is a plain `Trainer` in float32 with examples padded to
the longest in each batch of 4; selftune packs rows, computes logits only where a token is
trained and uses bfloat16 where the CPU has it. Each run is its own process (so its peak RSS is
its own); runs alternate reference / selftune so both see the same machine load. Counted:
useful (non-padding) tokens per second of the optimizer steps (an evaluation or a checkpoint
after a step is not counted, on either side), peak RSS, and model FLOPs
utilisation against the CPU's peak (see `cpu_peak_flops`).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def build_example_dataset(root: Path) -> Path:
    from selftune.dataset import run_build
    from selftune.demo import example_dir
    from selftune.ingest.importer import ingest_paths
    from selftune.workspace import init_workspace

    ws = init_workspace(root / "twin", ["Mags"])
    with ws.open_store() as store:
        ingest_paths(store, [example_dir() / "whatsapp", example_dir() / "notes"], ("Mags",))
    _, dataset_id = run_build(ws)
    return ws.datasets_dir / str(dataset_id)


def cpu_peak_flops(bf16: bool) -> tuple[float, str]:
    """Peak FLOP/s of the cores this process may use, and how it was estimated.

    AVX-512 cores with two 512-bit-wide FMA issue per cycle (Zen 4 runs them as 2x256 bits, so
    the same 32 fp32 FLOP/cycle/core); VDPBF16PS doubles that for bf16 (64 FLOP/cycle/core).
    """
    cores = len(os.sched_getaffinity(0))
    mhz = 0.0
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("cpu MHz"):
            mhz = max(mhz, float(line.split(":")[1]))
    ghz = mhz / 1000 or 2.5
    per_cycle = 64 if bf16 else 32
    how = f"{cores} cores x {ghz:.2f} GHz x {per_cycle} FLOP/cycle ({'bf16 dot' if bf16 else 'fp32 FMA'})"
    return cores * ghz * 1e9 * per_cycle, how


def train_flops_per_token(model, head_share: float, context: float) -> float:
    """Frozen-base LoRA: forward (2 FLOP/weight) + activation gradients (2) = 4 per weight; the
    vocabulary head only at the share of positions whose logits are computed; attention
    scores/values 2*2*layers*context*width forward, twice that backward."""
    cfg = model.config
    head = cfg.vocab_size * cfg.hidden_size
    body = sum(
        p.numel() for n, p in model.named_parameters() if "embed" not in n and "lora" not in n
    )
    body -= head if not cfg.tie_word_embeddings else 0
    attention = 3 * 2 * 2 * cfg.num_hidden_layers * context * cfg.hidden_size
    return 4 * body + 4 * head * head_share + attention


def step_clock():  # type: ignore[no-untyped-def]
    """A callback summing the seconds of the optimizer steps only (forward, backward, update):
    evaluations and checkpoints that follow a step are left out, for both sides alike."""
    from transformers import TrainerCallback

    class StepClock(TrainerCallback):
        seconds = 0.0
        started = 0.0

        def on_step_begin(self, args, state, control, **kwargs):  # type: ignore[no-untyped-def]
            self.started = time.perf_counter()

        def on_step_end(self, args, state, control, **kwargs):  # type: ignore[no-untyped-def]
            self.seconds += time.perf_counter() - self.started

    return StepClock()


def child_reference(dataset: Path, steps: int) -> dict:
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import DataCollatorForSeq2Seq, Trainer, TrainingArguments

    from selftune.models import load_model, load_tokenizer
    from selftune.training.trainer import encode_split

    tokenizer = load_tokenizer("embedded")
    items = encode_split(tokenizer, dataset, "train", 768)
    model = load_model("embedded")
    model.config.use_cache = False
    lora = LoraConfig(
        r=16, lora_alpha=32, lora_dropout=0.05, target_modules="all-linear", task_type="CAUSAL_LM"
    )
    model = get_peft_model(model, lora)
    pad = DataCollatorForSeq2Seq(tokenizer, padding=True, label_pad_token_id=-100)
    seen = {"useful": 0, "padded": 0}

    def collate(batch):  # type: ignore[no-untyped-def]
        out = pad(batch)
        seen["useful"] += sum(len(b["input_ids"]) for b in batch)
        seen["padded"] += out["input_ids"].numel()
        return out

    args = TrainingArguments(
        output_dir=str(dataset.parent / "ref-out"),
        per_device_train_batch_size=4,
        max_steps=steps,
        learning_rate=3e-4,
        save_strategy="no",
        report_to="none",
        use_cpu=True,
        disable_tqdm=True,
        remove_unused_columns=False,
        logging_steps=10**6,
    )
    clock = step_clock()
    trainer = Trainer(
        model=model, args=args, train_dataset=items, data_collator=collate, callbacks=[clock]
    )
    started = time.perf_counter()
    trainer.train()
    seconds = time.perf_counter() - started
    return {
        "name": "reference (Trainer + PEFT, fp32, pad to longest, batch 4)",
        "useful_tokens": seen["useful"],
        "computed_tokens": seen["padded"],
        "head_share": 1.0,  # logits for every position, padding included
        "seconds": clock.seconds,
        "run_seconds": seconds,
        "bf16": False,
        "threads": torch.get_num_threads(),
    }


def child_selftune(dataset: Path, steps: int) -> dict:
    import torch

    from selftune.config import TrainConfig
    from selftune.training.trainer import train

    run_dir = dataset.parent.parent / "runs" / f"bench-{time.time_ns()}"
    run_dir.mkdir(parents=True)
    config = TrainConfig(max_steps=steps, eval_every=10**6, batch_size=2, max_seq_len=768)
    clock = step_clock()
    summary = train(dataset, run_dir, config, callbacks=[clock])
    return {
        "name": "selftune train (packed rows, trained-position logits, bf16 autocast)",
        "useful_tokens": summary["trained_tokens"],
        "computed_tokens": summary["trained_tokens"],
        "head_share": _trained_share(dataset),  # logits only where a token is trained
        "seconds": clock.seconds,  # its train_seconds include the last-step evaluation
        "run_seconds": summary["train_seconds"],
        "bf16": summary["precision"] == "bf16",
        "threads": torch.get_num_threads(),
    }


def _trained_share(dataset: Path) -> float:
    items = _items(dataset)
    total = sum(len(i["input_ids"]) for i in items)
    trained = sum(sum(1 for t in i["labels"][1:] if t != -100) for i in items)
    return trained / total


def _items(dataset: Path) -> list[dict]:
    from selftune.models import load_tokenizer
    from selftune.training.trainer import encode_split

    return encode_split(load_tokenizer("embedded"), dataset, "train", 768)


def run_child(kind: str, dataset: Path, steps: int) -> dict:
    out = Path(tempfile.mkstemp(suffix=".json")[1])
    env = {**os.environ, "PYTHONPATH": str(REPO / "src")}
    cmd = [sys.executable, __file__, "--child", kind, "--dataset", str(dataset)]
    cmd += ["--steps", str(steps), "--out", str(out)]
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    subprocess.run(cmd, env=env, check=True, stdout=subprocess.DEVNULL)
    result = json.loads(out.read_text())
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    result["peak_rss_mb"] = round(max(peak, before) / 1024)  # children's max so far: run ref first
    result["load_before"] = os.getloadavg()[0]
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--child", choices=["reference", "selftune"])
    parser.add_argument("--dataset", type=Path)
    parser.add_argument("--steps", type=int)
    parser.add_argument("--out", type=Path)
    parser.add_argument("--steps-ref", type=int, default=8)
    parser.add_argument("--steps-selftune", type=int, default=4)
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--json", type=Path, help="Write all results here too.")
    args = parser.parse_args()
    if args.child:
        fn = child_reference if args.child == "reference" else child_selftune
        result = fn(args.dataset, args.steps)
        result["own_peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
        args.out.write_text(json.dumps(result))
        return
    root = Path(tempfile.mkdtemp(prefix="selftune-bench-"))
    dataset = build_example_dataset(root)
    results = []
    for _ in range(args.rounds):
        results.append(run_child("reference", dataset, args.steps_ref))
        results.append(run_child("selftune", dataset, args.steps_selftune))
    from selftune.models import load_model

    model = load_model("embedded")
    items = _items(dataset)
    # useful attention: each token attends to half its own example on average
    context = (
        sum(len(i["input_ids"]) ** 2 for i in items) / sum(len(i["input_ids"]) for i in items) / 2
    )
    for r in results:
        # the same model FLOPs per useful token for both (full logits), so MFU ratios = speed ratios
        r["flops"] = train_flops_per_token(model, 1.0, context) * r["useful_tokens"]
        peak, how = cpu_peak_flops(r["bf16"])
        r["tokens_per_second"] = r["useful_tokens"] / r["seconds"]
        r["mfu"] = r["flops"] / r["seconds"] / peak
        r["peak_how"] = how
        print(
            f"{r['name']}\n  {r['useful_tokens']} useful tokens ({r['computed_tokens']} computed) "
            f"in {r['seconds']:.1f}s of steps ({r['run_seconds']:.1f}s whole loop) = "
            f"{r['tokens_per_second']:.1f} tokens/s; peak RSS "
            f"{r['own_peak_rss_mb']} MB; MFU {100 * r['mfu']:.2f}% of {peak / 1e9:.0f} GFLOP/s "
            f"[{how}]; load {r['load_before']:.1f}; {r['threads']} threads"
        )
    ref = [r["tokens_per_second"] for r in results if r["name"].startswith("reference")]
    own = [r["tokens_per_second"] for r in results if r["name"].startswith("selftune")]
    print(f"speed-up (useful tokens/s): {sum(own) / len(own) / (sum(ref) / len(ref)):.2f}x")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
