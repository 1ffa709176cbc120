"""How closely the exported GGUFs follow the trained model: greedy tokens that llama.cpp gives on
the f16 and q8_0 exports, compared with transformers on the merged model, prompt by prompt.

The embedded model (SmolLM2-135M-Instruct) with a small random LoRA adapter on q/k/v (as a
trained run has), exported the way `selftune export` does. Prints, per file, how many of the
first N greedy tokens agree before the first difference, and the GGUF sizes.

    PYTHONPATH=src python benchmarks/export_fidelity.py [--tokens 16]

Run `uptime` first: the CPU is shared on the dev machine.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
from pathlib import Path

PROMPTS = [
    ("plain", "The bees this morning were"),
    ("chat", [{"role": "user", "content": "are you coming sunday?"}]),
    (
        "chat+system",
        [{"role": "system", "content": "You are Mags."}, {"role": "user", "content": "bees ok?"}],
    ),  # fmt: skip
]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--tokens", type=int, default=16)
    args = parser.parse_args()
    import llama_cpp
    import torch
    from peft import LoraConfig, get_peft_model

    from selftune.export import export_run
    from selftune.models import load_model, load_tuned

    print("load:", os.getloadavg())
    tmp = Path(tempfile.mkdtemp())
    run_dir = tmp / "run"
    torch.manual_seed(0)
    lora = LoraConfig(r=4, target_modules=["q_proj", "k_proj", "v_proj"], init_lora_weights=False)
    peft_model = get_peft_model(load_model("embedded"), lora)
    for name, param in peft_model.named_parameters():
        if "lora_B" in name:
            param.data.mul_(0.01)
    peft_model.save_pretrained(run_dir / "adapter")
    (run_dir / "run.json").write_text(json.dumps({"base": "embedded"}))
    written = export_run(run_dir, tmp / "export", ("merged", "f16", "q8_0"))
    model, tokenizer = load_tuned(run_dir)
    model = model.merge_and_unload().eval()
    for kind in ("f16", "q8_0"):
        llm = llama_cpp.Llama(model_path=written[kind], n_ctx=256, verbose=False)
        size = Path(written[kind]).stat().st_size / 1e6
        for label, prompt in PROMPTS:
            text = (
                prompt
                if isinstance(prompt, str)
                else tokenizer.apply_chat_template(
                    prompt, tokenize=False, add_generation_prompt=True
                )
            )
            ids = tokenizer.encode(text, add_special_tokens=False)
            with torch.no_grad():
                ours = model.generate(
                    torch.tensor([ids]),
                    max_new_tokens=args.tokens,
                    do_sample=False,
                    min_new_tokens=args.tokens,
                )[0][len(ids) :].tolist()
            llm.reset()
            theirs = []
            for token in llm.generate(ids, temp=0.0, top_k=1, repeat_penalty=1.0):
                theirs.append(token)
                if len(theirs) == len(ours):
                    break
            same = next(
                (i for i, (a, b) in enumerate(zip(ours, theirs, strict=False)) if a != b), len(ours)
            )
            print(f"{kind:5} {size:6.0f} MB  {label:12} {same:2}/{len(ours)} greedy tokens agree")
    print("load:", os.getloadavg())


if __name__ == "__main__":
    main()
