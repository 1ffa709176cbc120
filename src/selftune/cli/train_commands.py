"""Commands for training and export: `selftune train`, `selftune export`."""

from __future__ import annotations

from pathlib import Path

import click

from selftune.cli.options import config_option, overrides, resume_option, workspace_option
from selftune.config import TrainConfig
from selftune.training import is_main_process, run_train
from selftune.workspace import Workspace

T = TrainConfig


@click.command()
@workspace_option
@config_option(T, "preset")
@config_option(T, "base", metavar="MODEL")
@config_option(T, "method")
@click.option("--dataset", metavar="ID", help="Dataset id (default: the latest).")
@config_option(T, "max_steps")
@config_option(T, "minutes")
@config_option(T, "epochs")
@config_option(T, "learning_rate", "--lr")
@config_option(T, "batch_size")
@config_option(T, "gradient_accumulation", "--grad-accum")
@config_option(T, "max_seq_len")
@config_option(T, "packing")
@config_option(T, "precision")
@config_option(T, "eval_every")
@config_option(T, "report_to")
@config_option(T, "seed")
@resume_option("run from its newest checkpoint")
def train(
    ws: Workspace,
    dataset: str | None,
    preset: str | None,
    resume_id: str | None,
    **options: object,
) -> None:
    """Fine-tune on the latest dataset (LoRA by default); saves the run under runs/<id>/.

    Loss is on your own turns only; short examples are packed into rows. A progress bar shows
    loss, tokens/s and the time left; Ctrl-C saves a checkpoint and stops, and --resume goes on
    from it. Settings come from `train:` in twin.yaml, a --preset fills what it does not set, and
    flags override both. Under `accelerate launch` the same command trains on many GPUs.

    \b
    Examples:
      selftune train --minutes 10
      selftune train --max-steps 200 --lr 1e-4
      selftune train --preset gpu --base Qwen/Qwen2.5-1.5B-Instruct
      selftune train --resume
      accelerate launch --config_file configs/accelerate/ddp.yaml -m selftune train --preset multi-gpu
    """
    summary, run_dir = run_train(
        ws,
        dataset=dataset,
        preset=preset,
        resume_id=resume_id,
        overrides=overrides(options),
        echo=click.echo,
    )
    if not is_main_process():
        return
    valid = f"{summary['valid_loss']:.3f}" if summary["valid_loss"] is not None else "-"
    plan = summary["plan"]
    if plan["decided_by"] == "minutes" and plan["step_seconds"] is not None:
        click.echo(
            f"Plan: {plan['max_steps']} steps ({plan['epochs']:.1f} epochs) at "
            f"{plan['step_seconds']:.1f}s a step, validation every {plan['eval_every']} steps, "
            f"peak learning rate {plan['learning_rate']:.2g}"
        )
    click.echo(
        f"Done ({summary['stopped_by']}): {summary['steps']} steps, {summary['epochs']} epochs in "
        f"{summary['seconds']:.0f}s ({summary['tokens_per_second']:.0f} tokens/s, "
        f"{summary['precision']}); train loss {summary['train_loss']:.3f}, validation loss {valid}"
        + (f" (best, step {summary['best_step']})." if summary.get("best_step") else ".")
    )
    if summary["interrupted"]:
        click.echo(f"Interrupted; continue with: selftune train --resume {run_dir.name}")
    else:
        click.echo("Next: selftune eval, or selftune export")


@click.command("export")
@workspace_option
@click.option("--run", "run_id", metavar="ID", help="Run id (default: the latest).")
@click.option(
    "--format",
    "formats",
    type=click.Choice(["adapter", "merged", "f16", "q8_0", "f32", "lora-gguf"]),
    multiple=True,
    help="What to write (repeatable; default: adapter, merged, f16, q8_0).",
)
@click.option("--out", type=click.Path(path_type=Path), help="Folder (default: runs/<id>/export).")
def export(ws: Workspace, run_id: str | None, formats: tuple[str, ...], out: Path | None) -> None:
    """Export a run for other engines: PEFT adapter, merged safetensors, GGUF and a Modelfile.

    The adapter loads in transformers and vLLM; the GGUF files (f16, q8_0) in llama.cpp and
    Ollama; the Modelfile's TEMPLATE and stop tokens are the chat template used in training and
    its SYSTEM the twin's prompt. f16 gives the trained model's text; q8_0 is smaller and drifts.
    lora-gguf is the adapter alone as GGUF: llama.cpp (`--lora`) and Ollama (`ADAPTER`) apply
    it to the base's GGUF, so one base serves every run.

    \b
    Examples:
      selftune export
      selftune export --format q8_0 --out ~/models/mags
      selftune export --format lora-gguf
      cd runs/<id>/export && ollama create mags -f Modelfile && ollama run mags
    """
    from selftune.export import export_run
    from selftune.twin import Twin

    run = ws.artefacts.run(run_id)
    run_dir = run.path
    target = out or run.export_dir
    # the Modelfile's SYSTEM: the twin's prompt as `serve` gives it today (month included)
    system = Twin.from_config(ws.config).system()
    written = export_run(
        run_dir, target, formats or ("adapter", "merged", "f16", "q8_0"), ws.config.name, system
    )
    for kind, path in written.items():
        click.echo(f"  {kind:9} {path}")
    if "modelfile" in written:
        click.echo(f"Ollama: cd {target} && ollama create {ws.config.name} -f Modelfile")
    if "adapter" in written:
        click.echo("vLLM: see docs/serving.md (--enable-lora --lora-modules --max-lora-rank)")


COMMANDS = [train, export]
