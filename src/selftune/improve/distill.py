"""`run_distill`: a new run trained from the current twin on what its owner picked.

Phases, each resumable (`--resume`), in `runs/<id>/phases/<phase>/`:
1. `sft` — always: the kept and edited texts as targets, mixed with a replay of the original
   training split (`improve.replay` examples per kept one) so the twin does not forget the rest
   of its owner; the training stage's own loop (`training.fit`), loss on the reply only,
   continuing the parent's LoRA adapter.
2. `dpo` (chosen vs rejected pairs) or `kto` (thumbs up/down) — TRL's `DPOTrainer` /
   `KTOTrainer`, whose reference is a frozen copy of the adapter as phase 1 left it.
The held-out share of picks (`improve.held_out`, the most recent) is never trained on; the eval's
picks section scores it. run.json records the parent, the counts and the method; the new run is
the newest finished run, so it becomes `twin`.
"""

from __future__ import annotations

import gc
import json
import random
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from selftune.artefacts import TRAINED_KEYS, RunDir
from selftune.config import ImproveConfig, TrainConfig, apply_overrides
from selftune.errors import SelftuneError
from selftune.picks import Picks, build_picks, split_held_out, tags_of
from selftune.store.samples import SampleLog
from selftune.twin import Twin
from selftune.use import guard_for
from selftune.workspace import Workspace

NEEDS = {"sft": 4, "dpo": 4, "kto": 6}  # kept texts / pairs / thumbs (with at least one of each)
PHASE_DONE = "done.json"  # in phases/<phase>/: what the finished phase measured


def kto_classes() -> tuple[Any, Any]:
    """TRL's KTOConfig and KTOTrainer wherever this TRL keeps them (it moved them in and out of
    `trl.experimental` across releases); a clear error when it has neither."""
    import importlib

    import trl

    for where in ("trl", "trl.experimental.kto", "trl.trainer.kto_trainer"):
        try:
            module = importlib.import_module(where)
            return module.KTOConfig, module.KTOTrainer
        except (ImportError, AttributeError):
            continue
    raise SelftuneError(
        f"trl {trl.__version__} has no KTOTrainer (looked in trl, trl.experimental.kto): "
        "install the tested one (pip install -c constraints.txt 'trl>=1.0,<2'), "
        "or distill with method: dpo"
    )


def choose_method(picks: Picks, asked: str) -> tuple[str, str]:
    """(method, why) for `asked` (auto, sft, dpo, kto); refuses when the picks are too few."""
    have = {
        "sft": len(picks.kept),
        "dpo": len(picks.pairs),
        "kto": len(picks.thumbs),
    }
    ups = sum(t.desirable for t in picks.thumbs)
    kto_ok = have["kto"] >= NEEDS["kto"] and 0 < ups < have["kto"]
    enough = {
        "sft": have["sft"] >= NEEDS["sft"],
        "dpo": have["dpo"] >= NEEDS["dpo"] and have["sft"] >= 1,
        "kto": kto_ok,
    }
    summary = (
        f"the picks give {have['sft']} kept text(s), {have['dpo']} chosen-vs-rejected pair(s) and "
        f"{have['kto']} thumb(s) ({ups} up); sft needs {NEEDS['sft']} kept, dpo "
        f"{NEEDS['dpo']} pairs, kto {NEEDS['kto']} thumbs with both up and down"
    )
    if asked != "auto":
        if not enough[asked]:
            raise SelftuneError(
                f"too few picks for --method {asked}: {summary}. Nothing was trained; review more "
                "with `selftune amplify` then `selftune review`"
            )
        return asked, f"asked for {asked}; {summary}"
    for method, reason in (
        ("dpo", "pairs of a kept and a rejected candidate are the strongest signal"),
        ("kto", "there are thumbs up and down but too few pairs"),
        ("sft", "there are kept texts but too few pairs or thumbs"),
    ):
        if enough[method]:
            return method, f"{method}: {reason} ({summary})"
    raise SelftuneError(
        f"too few picks to distill: {summary}. Nothing was trained; review more with "
        "`selftune amplify` then `selftune review`"
    )


def sft_records(picks: Picks) -> list[dict[str, Any]]:
    """Kept texts as dataset records: the chat with the kept reply, or the note continued."""
    out = []
    for k in picks.kept:
        if k.prompt.kind == "chat":
            out.append(
                {"messages": [*(k.prompt.messages or []), {"role": "assistant", "content": k.text}]}
            )
        else:
            out.append({"text": (k.prompt.text or "") + k.text})
    return out


def replay_records(train: list[dict[str, Any]], count: int, seed: int) -> list[dict[str, Any]]:
    """`count` records of the original training split (seeded; repeats when it is smaller)."""
    if count <= 0 or not train:
        return []
    rng = random.Random(f"replay-{seed}")
    pool = [{k: v for k, v in r.items() if k != "_meta"} for r in train]
    out = []
    while len(out) < count:
        rng.shuffle(pool)
        out += pool[: count - len(out)]
    return out


def require_adapter(parent: RunDir) -> RunDir:
    if parent.weights != "adapter":
        raise SelftuneError(
            f"run {parent.id} is a full fine-tune; distill continues a LoRA adapter. Train a "
            "LoRA run (`selftune train --method lora`) or pass --run"
        )
    return parent


def _train_config(parent: RunDir, settings: ImproveConfig) -> TrainConfig:
    config = TrainConfig.model_validate(parent.info().get("settings") or {})
    apply_overrides(
        config,
        {
            "learning_rate": settings.learning_rate,
            "epochs": settings.epochs,
            "seed": settings.seed,
            "precision": "fp32",
        },
    )
    # distill's own budget, not the parent's; no validation split, so no early stopping
    config.minutes, config.max_steps, config.early_stopping_patience = settings.minutes, None, None
    return config


def sft_phase(
    model: Any, tokenizer: Any, records: list[dict[str, Any]], folder: Path, config: TrainConfig
) -> dict[str, Any]:
    """Phase 1: selftune's training loop (`training.fit`) on kept texts + replay; a fixed plan
    (improve.epochs) that improve.minutes only cuts short. Returns what `fit` measured."""
    from selftune.training.fit import encode_records, fit, latest_checkpoint

    items = encode_records(tokenizer, records, config.max_seq_len)
    fitted = fit(
        model,
        tokenizer,
        items,
        [],
        folder,
        config,
        checkpoint=latest_checkpoint(folder),
        interactive=False,
    )
    return fitted.summary


def _phase_summary(trained: dict[str, Any]) -> dict[str, Any]:
    """A phase's line in run.json's `distill.phases`."""
    return {
        "examples": trained.get("train_examples", trained.get("examples")),
        "rows": trained.get("train_rows", trained.get("rows")),
        "steps": trained.get("steps"),
        "train_loss": trained.get("train_loss"),
        "stopped_by": trained.get("stopped_by"),
    }


def preference_phase(
    method: str,
    model: Any,
    tokenizer: Any,
    picks: Picks,
    folder: Path,
    config: TrainConfig,
    settings: ImproveConfig,
) -> dict[str, Any]:
    """Phase 2: TRL's DPOTrainer on pairs, or KTOTrainer on thumbs; the reference is a frozen
    copy ("ref" adapter, made by TRL) of the adapter phase 1 left."""
    import torch
    from datasets import Dataset
    from transformers import PrinterCallback

    from selftune.improve.amplify import render_prompt
    from selftune.training.fit import latest_checkpoint, trl_callbacks

    common = {
        "output_dir": str(RunDir(folder).checkpoints_dir),
        "per_device_train_batch_size": 2,
        "learning_rate": settings.learning_rate,
        "num_train_epochs": settings.epochs,
        "beta": settings.beta,
        "max_length": config.max_seq_len,
        "logging_steps": 1,
        "save_strategy": "steps",
        "save_steps": 10,
        "save_total_limit": 2,
        "report_to": "none",
        "use_cpu": not torch.cuda.is_available(),
        "disable_tqdm": True,
        "seed": settings.seed,
        "bf16": False,
        "dataset_num_proc": None,
    }
    if method == "dpo":
        from trl import DPOConfig, DPOTrainer

        rows = [
            {
                "prompt": render_prompt(tokenizer, p.prompt),
                "chosen": p.chosen,
                "rejected": p.rejected,
            }
            for p in picks.pairs
        ]
        args = DPOConfig(**common)
        trainer_class: Any = DPOTrainer
    else:
        KTOConfig, KTOTrainer = kto_classes()

        rows = [
            {
                "prompt": render_prompt(tokenizer, t.prompt),
                "completion": t.text,
                "label": t.desirable,
            }
            for t in picks.thumbs
        ]
        ups = max(1, sum(r["label"] for r in rows))
        downs = max(1, len(rows) - ups)
        # weigh the rarer side up, as the KTO paper advises for imbalanced thumbs
        args = KTOConfig(
            **common,
            desirable_weight=max(1.0, downs / ups),
            undesirable_weight=max(1.0, ups / downs),
        )
        trainer_class = KTOTrainer
    callbacks, budget = trl_callbacks(folder, settings.minutes)
    trainer = trainer_class(
        model=model,
        args=args,
        train_dataset=Dataset.from_list(rows),
        processing_class=tokenizer,
        callbacks=callbacks,
    )
    trainer.remove_callback(PrinterCallback)
    result = trainer.train(resume_from_checkpoint=latest_checkpoint(folder))
    if "ref" in getattr(model, "peft_config", {}):
        model.delete_adapter("ref")
    return {
        "examples": len(rows),
        "steps": trainer.state.global_step,
        "train_loss": result.training_loss,
        "stopped_by": "time limit" if budget.hit else "epochs",
    }


def run_distill(
    ws: Workspace,
    method: str | None = None,
    minutes: float | None = None,
    parent_id: str | None = None,
    resume_id: str | None = None,
    overrides: dict[str, Any] | None = None,
    echo: Callable[[str], Any] | None = None,
) -> tuple[dict[str, Any], Path]:
    """Distill the picks into a new run from the current twin (or `parent_id`); with
    `resume_id` ("latest" for the newest unfinished) continue an interrupted distill.
    Returns (run.json summary, run folder)."""
    say = echo or (lambda _: None)
    started = time.monotonic()
    settings = ws.config.improve
    if resume_id is not None:
        run = _resumable(ws, resume_id)
        saved = run.settings()
        settings = ImproveConfig.model_validate(saved["improve"])
        parent = ws.artefacts.run(saved["parent"])
        trained_ids, held_ids = set(saved["samples"]), saved["held_out_samples"]
        method, why = saved["method"], saved["why"]
    else:
        apply_overrides(settings, (overrides or {}) | {"method": method, "minutes": minutes})
        parent = require_adapter(ws.artefacts.run(parent_id))
        trained_ids, held_ids = set(), []
    twin = Twin.from_config(ws.config)
    guard = guard_for(ws, training=True)
    reviewed = SampleLog(ws.store_path).reviewed()
    if resume_id is None:
        train_samples, held = split_held_out(reviewed, settings.held_out)
        held_ids = [s["id"] for s in held]
    else:
        train_samples = [s for s in reviewed if s["id"] in trained_ids]
    picks = build_picks(train_samples, twin, tags_of(ws.config), guard)
    if resume_id is None:
        method, why = choose_method(picks, settings.method)
        run = ws.artefacts.new_run()
        run.write_settings(
            {
                "distill": True,
                "parent": parent.id,
                "method": method,
                "why": why,
                "improve": settings.model_dump(),
                "samples": picks.samples,
                "held_out_samples": held_ids,
            }
        )
        say(f"Distilling {why}")
        say(f"From {parent.id} → {run.path}")
    dataset = ws.artefacts.dataset_of(parent)
    config = _train_config(parent, settings)
    replayed = replay_records(
        dataset.read_split("train"), round(settings.replay * max(1, len(picks.kept))), settings.seed
    )
    phases: dict[str, Any] = {}
    sft_dir = run.phase_dir("sft")
    model, tokenizer = None, None
    if (sft_dir / PHASE_DONE).exists():
        sft = json.loads((sft_dir / PHASE_DONE).read_text())
        say("sft phase already done; going on from it")
    else:
        model, tokenizer = _from_phase(parent, parent.adapter_dir)
        sft_dir.mkdir(parents=True, exist_ok=True)
        records = sft_records(picks) + replayed
        say(f"Phase sft: {len(picks.kept)} kept + {len(replayed)} replayed examples")
        sft = sft_phase(model, tokenizer, records, sft_dir, config)
        model.save_pretrained(sft_dir / "adapter")
        (sft_dir / PHASE_DONE).write_text(json.dumps(sft, indent=2))
    phases["sft"] = _phase_summary(sft)
    if method in ("dpo", "kto"):
        model = None  # free phase 1's model (and its optimizer) before loading phase 2's
        gc.collect()
        pref_dir = run.phase_dir(method)
        pref_dir.mkdir(parents=True, exist_ok=True)
        model, tokenizer = _from_phase(parent, sft_dir / "adapter")
        say(
            f"Phase {method}: {len(picks.pairs) if method == 'dpo' else len(picks.thumbs)} examples"
        )
        phases[method] = preference_phase(
            method, model, tokenizer, picks, pref_dir, config, settings
        )
    if model is None:
        model, tokenizer = _from_phase(parent, sft_dir / "adapter")
    if run.adapter_dir.exists():
        shutil.rmtree(run.adapter_dir)
    model.save_pretrained(run.adapter_dir)
    tokenizer.save_pretrained(run.adapter_dir)
    # the SFT phase's measurements (a done.json of an older selftune may lack some), with
    # steps, loss and time over every phase
    trained = {k: sft.get(k) for k in TRAINED_KEYS} | {
        "base": parent.base,
        "settings": config.model_dump(),
        "method": parent.info().get("method", "lora"),
        "steps": sum(p.get("steps") or 0 for p in phases.values()),
        "train_loss": phases.get(method, phases["sft"]).get("train_loss"),
        "valid_loss": None,
        "seconds": round(time.monotonic() - started, 1),
    }
    distill = {
        "method": method,
        "why": why,
        "counts": picks.counts(),
        "replayed": len(replayed),
        "held_out_samples": held_ids,
        "trained_samples": picks.samples,
        "phases": phases,
        "improve": settings.model_dump(),
    }
    summary = run.record("distill", dataset, trained, parent=parent.id, distill=distill)
    run.write_info(summary)
    return summary, run.path


def _from_phase(parent: RunDir, adapter: Path) -> tuple[Any, Any]:
    """(the base with `adapter` — the parent's, or a phase's — trainable, in float32; tokenizer).
    A fresh load per phase keeps phases apart."""
    from peft import PeftModel

    from selftune.models import load_model, load_tokenizer

    tokenizer = load_tokenizer(parent.base)
    model = PeftModel.from_pretrained(load_model(parent.base), adapter, is_trainable=True)
    model.config.use_cache = False
    return model, tokenizer


def _started_by_distill(run: RunDir) -> bool:
    return run.has_settings and bool(run.settings().get("distill"))


def _resumable(ws: Workspace, ref: str) -> RunDir:
    if ref == "latest":
        candidates = [
            r
            for r in ws.artefacts.run_folders()
            if _started_by_distill(r) and not r.info_path.exists()
        ]
        if not candidates:
            raise SelftuneError(
                "no interrupted distill run to resume; start one with `selftune distill`"
            )
        return candidates[-1]
    run = ws.artefacts.run_folder(ref)
    if not _started_by_distill(run):
        raise SelftuneError(f"{run.path} was not started by `selftune distill`; nothing to resume")
    return run
