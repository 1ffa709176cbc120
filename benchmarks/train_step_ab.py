"""One training step, before and after the fused step, interleaved in one process (A, B, A, B).

Run: PYTHONPATH=src python benchmarks/train_step_ab.py [--rounds 5] [--rows 2] [--threads 2]

Both sides load the embedded SmolLM2-135M-Instruct as `selftune train` does on a bf16 CPU (bf16
base, LoRA all-linear r16) and run forward + backward of `packed_loss` on the same batch (the
first `--rows` packed rows of 768 of the bundled example person, memory blocks on) under bf16
autocast. "before": PEFT's LoRA forward with bf16 adapters and transformers' sdpa attention
with the block-diagonal mask of packed rows (the step up to this change). "after": float32
master adapters in `fused_lora` layers and `packed_attention`. Steps alternate so both see the
same machine load; printed are the medians of wall and CPU seconds and their ratios, with the
load average. On a shared machine CPU seconds are the steadier figure (with one thread).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from train import build_example_dataset  # noqa: E402


def load(after: bool):  # type: ignore[no-untyped-def]
    import torch
    from peft import LoraConfig, get_peft_model

    from selftune.models import load_model

    torch.manual_seed(0)
    model = load_model("embedded", torch.bfloat16)
    model.config.use_cache = False
    lora = LoraConfig(r=16, lora_alpha=32, lora_dropout=0.0, target_modules="all-linear")
    # before: adapters in bf16 (autocast_adapter_dtype=False), as selftune trained on bf16 CPUs
    return get_peft_model(model, lora, autocast_adapter_dtype=after).train()


def step(model, batch, after: bool) -> float:  # type: ignore[no-untyped-def]
    import torch

    from selftune.training.fused_lora import fused_lora
    from selftune.training.packed_attention import packed_attention
    from selftune.training.packing import packed_loss

    kernels = contextlib.ExitStack()
    if after:
        kernels.enter_context(packed_attention(model))
        kernels.enter_context(fused_lora(model))
    with kernels, torch.autocast("cpu", dtype=torch.bfloat16):
        total, count = packed_loss(model, dict(batch))
        loss = total / count
    loss.backward()
    model.zero_grad(set_to_none=True)
    return float(loss.detach())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--rows", type=int, default=2)
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args()
    import torch

    from selftune.models import load_tokenizer
    from selftune.training.fit import to_rows
    from selftune.training.packing import PackedCollator
    from selftune.training.trainer import encode_split

    if args.threads:
        torch.set_num_threads(args.threads)
    dataset = build_example_dataset(Path(tempfile.mkdtemp(prefix="selftune-ab-")))
    tokenizer = load_tokenizer("embedded")
    rows = to_rows(encode_split(tokenizer, dataset, "train", 768), 768, True)
    batch = PackedCollator(tokenizer.pad_token_id)(rows[: args.rows])
    tokens = int(batch.pop("real_tokens"))
    sides = {"before": load(False), "after": load(True)}
    for name, model in sides.items():  # warm-up; the losses agree to bf16 precision
        print(f"{name}: warm-up loss {step(model, batch, name == 'after'):.4f}", flush=True)
    wall: dict[str, list[float]] = {name: [] for name in sides}
    cpu: dict[str, list[float]] = {name: [] for name in sides}
    loads = [os.getloadavg()[0]]
    for r in range(args.rounds):
        for name, model in sides.items():
            started, cpu_started = time.perf_counter(), time.process_time()
            step(model, batch, name == "after")
            wall[name].append(time.perf_counter() - started)
            cpu[name].append(time.process_time() - cpu_started)
        loads.append(os.getloadavg()[0])
        print(
            f"round {r}: "
            + ", ".join(f"{n} {wall[n][-1]:.2f} s wall / {cpu[n][-1]:.2f} s CPU" for n in sides)
            + f"; load {loads[-1]:.2f}",
            flush=True,
        )
    print(f"{tokens} tokens per step, {torch.get_num_threads()} threads, {args.rounds} rounds")
    for label, seconds in (("wall", wall), ("CPU", cpu)):
        before, after = (statistics.median(seconds[n]) for n in ("before", "after"))
        print(
            f"median {label} s: before {before:.2f} ({tokens / before:.0f} tokens/s), after "
            f"{after:.2f} ({tokens / after:.0f} tokens/s): {before / after:.2f}x"
        )
    print(f"load average over the rounds: {min(loads):.2f}-{max(loads):.2f}")


if __name__ == "__main__":
    main()
