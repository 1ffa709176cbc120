"""Which GGUF should serve a trained twin: per format, how closely llama.cpp's greedy tokens follow
transformers on held-out prompts, next to its decode speed at B = 1 and B = 8.

Formats, all from the same run (the one rule `engines/selection.py` follows is in
docs/serving.md, "Which GGUF serves a twin"):

- `lora-q4_1`: the adapter as a LoRA GGUF on the base's own GGUF (the embedded Q4_1 file);
- `lora-f16`: the same adapter on an f16 GGUF of the base;
- `f16`, `q8_0`: the merged model (what `selftune export` writes).

The reference is transformers in fp32 on the base with the run's adapter (`load_tuned`). Each
prompt is a held-out example of the run's dataset (its chat turns before the owner's reply, or the
first 200 characters of a note), decoded greedily for `--tokens` tokens by both through
selftune's own llama.cpp engine; agreement is how many of the reference's tokens come out the same
before the first difference. Speed is the engine's decode tokens/s with the server's sampling
(temperature 0.8, top-p 0.95): one request of n = 1 and one of n = 8, `--threads` threads.

    PYTHONPATH=src python benchmarks/export_fidelity.py --run WS/runs/ID   # a trained run
    PYTHONPATH=src python benchmarks/export_fidelity.py                   # a random adapter

Run `uptime` first: the CPU is shared on the dev machine.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from pathlib import Path

FORMATS = ("lora-q4_1", "lora-f16", "f16", "q8_0")
SAMPLING = {"temperature": 0.8, "top_p": 0.95}


def random_run(tmp: Path) -> Path:
    """The embedded model with a small random LoRA adapter on q/k/v, as a finished run."""
    import torch
    from peft import LoraConfig, get_peft_model

    from selftune.models import load_model

    run_dir = tmp / "run"
    torch.manual_seed(0)
    lora = LoraConfig(r=4, target_modules=["q_proj", "k_proj", "v_proj"], init_lora_weights=False)
    peft_model = get_peft_model(load_model("embedded"), lora)
    for name, param in peft_model.named_parameters():
        if "lora_B" in name:
            param.data.mul_(0.01)
    peft_model.save_pretrained(run_dir / "adapter")
    (run_dir / "run.json").write_text(json.dumps({"base": "embedded"}))
    return run_dir


def held_out_prompts(run_dir: Path, tokenizer, count: int) -> list[str]:  # type: ignore[no-untyped-def]
    """Rendered prompts from the run's validation split (or three fixed ones without a dataset)."""
    info = json.loads((run_dir / "run.json").read_text())
    valid = Path(info.get("dataset_path", "")) / "valid.jsonl"
    rows = [json.loads(line) for line in valid.read_text().splitlines()] if valid.is_file() else []
    if not rows:
        rows = [{"text": "The bees this morning were"},
                {"messages": [{"role": "user", "content": "are you coming sunday?"},
                              {"role": "assistant", "content": ""}]}]  # fmt: skip
    prompts = []
    for row in rows[:count]:
        if "messages" in row:
            turns = row["messages"][:-1]  # up to the owner's reply
            prompts.append(
                tokenizer.apply_chat_template(turns, tokenize=False, add_generation_prompt=True)
            )
        else:
            prompts.append(row["text"][:200])
    return prompts


def reference(model, tokenizer, prompts: list[str], tokens: int) -> list[list[int]]:  # type: ignore[no-untyped-def]
    import torch

    out = []
    for prompt in prompts:
        ids = tokenizer.encode(prompt, add_special_tokens=False)
        with torch.no_grad():
            new = model.generate(torch.tensor([ids]), max_new_tokens=tokens, do_sample=False)
        out.append(tokenizer.encode(tokenizer.decode(new[0][len(ids) :], skip_special_tokens=True),
                                    add_special_tokens=False))  # fmt: skip
    return out


def agreement(engine, tokenizer, prompts: list[str], refs: list[list[int]], tokens: int) -> dict:  # type: ignore[no-untyped-def]
    from selftune.engines.base import GenRequest

    agreed, total, whole = 0, 0, 0
    for prompt, ref in zip(prompts, refs, strict=True):
        text = engine.generate([GenRequest(prompt, 1, 0.0, 1.0, tokens, [], 0)])[0].texts[0]
        ours = tokenizer.encode(text, add_special_tokens=False)
        same = next((i for i, (a, b) in enumerate(zip(ref, ours, strict=False)) if a != b),
                    min(len(ref), len(ours)))  # fmt: skip
        agreed, total = agreed + same, total + len(ref)
        whole += ours[: len(ref)] == ref
    return {"tokens_agreed": agreed, "tokens": total, "share": round(agreed / max(total, 1), 3),
            "prompts_identical": whole, "prompts": len(prompts)}  # fmt: skip


def speed(engine, prompt: str, n: int, tokens: int) -> float:  # type: ignore[no-untyped-def]
    """Decode tokens/s of one request of n candidates (from the first token to the last)."""
    from selftune.engines.base import GenRequest

    times: list[float] = []
    request = GenRequest(prompt, n, SAMPLING["temperature"], SAMPLING["top_p"], tokens, [], 7)
    request.on_text = lambda i, text: times.append(time.perf_counter())
    result = engine.generate([request])[0]
    decoded = sum(result.completion_tokens) - n
    return round(decoded / (times[-1] - times[0]), 1) if len(times) > 1 else 0.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--run", type=Path, help="a finished run (default: a random adapter)")
    parser.add_argument("--prompts", type=int, default=8)
    parser.add_argument("--tokens", type=int, default=24)
    parser.add_argument("--speed-tokens", type=int, default=64)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--formats", default=",".join(FORMATS))
    args = parser.parse_args()
    import torch

    from selftune.engines.llamacpp_engine import LlamaCppEngine
    from selftune.export import export_run
    from selftune.export.model_gguf import write_gguf
    from selftune.models import embedded_gguf_path, ensure_embedded_checkpoint, load_tuned

    torch.set_num_threads(args.threads)
    report: dict = {"load_before": os.getloadavg(), "threads": args.threads, "formats": {}}
    tmp = Path(tempfile.mkdtemp())
    run_dir = args.run or random_run(tmp)
    model, tokenizer = load_tuned(run_dir)
    prompts = held_out_prompts(run_dir, tokenizer, args.prompts)
    refs = reference(model, tokenizer, prompts, args.tokens)
    del model
    wanted = args.formats.split(",")
    merged = [k for k in ("f16", "q8_0") if k in wanted]
    written = export_run(run_dir, tmp / "export", ("lora-gguf", *merged))
    files = {k: (Path(written[k]), None) for k in merged}
    lora = Path(written["lora-gguf"])
    files["lora-q4_1"] = (embedded_gguf_path(), lora)
    if "lora-f16" in wanted:
        base_f16 = write_gguf(ensure_embedded_checkpoint(), tmp / "base-f16.gguf", "f16")
        files["lora-f16"] = (base_f16, lora)
    for kind in wanted:
        gguf, adapter = files[kind]
        engine = LlamaCppEngine(gguf, tokenizer, threads=args.threads, lora=adapter)
        row = {"load": os.getloadavg()[0], "mb": round(gguf.stat().st_size / 1e6)}
        row |= agreement(engine, tokenizer, prompts, refs, args.tokens)
        speed(engine, prompts[0], 1, 8)  # warm up
        row["b1_tok_s"] = statistics.median(
            speed(engine, prompts[0], 1, args.speed_tokens) for _ in range(3)
        )
        row["b8_tok_s"] = speed(engine, prompts[0], 8, args.speed_tokens)
        row["load_after"] = os.getloadavg()[0]
        engine.close()
        report["formats"][kind] = row
        print(kind, row, flush=True)
    report["load_after"] = os.getloadavg()
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
