"""Commands for the model stages: build, train, eval."""

from __future__ import annotations

import json

import click

from selftune.cli.options import workspace_option
from selftune.config import apply_overrides
from selftune.workspace import Workspace


def owner_name(ws: Workspace) -> str:
    return ws.config.me[0] if ws.config.me else "the owner"


def run_build(ws: Workspace, dry_run: bool = False) -> tuple[dict, str | None]:
    """Build a dataset from the store; returns (card, dataset id or None for a dry run)."""
    from selftune.dataset import build_dataset, card, write_dataset
    from selftune.models import load_tokenizer

    tokenizer = load_tokenizer(ws.config.train.base)

    def count(text: str) -> int:
        return len(tokenizer.encode(text, add_special_tokens=False))

    with ws.open_store() as store:
        store.apply_identity(ws.config.me)
        data = build_dataset(store, ws.config.build, owner_name(ws), count)
    info = card(data, ws.config.build, ws.config.train.base)
    if dry_run:
        return info, None
    folder = ws.new_artefact_dir("datasets")
    write_dataset(data, folder, info)
    return info, folder.name


@click.command()
@workspace_option
@click.option("--dry-run", is_flag=True, help="Print the dataset card without writing anything.")
@click.option(
    "--session-gap", type=float, metavar="MINUTES", help="Silence that starts a new session."
)
@click.option("--valid-fraction", type=float, help="Share of each source held out (most recent).")
@click.option("--no-notes", is_flag=True, help="Leave notes out of the dataset.")
def build(
    ws: Workspace,
    dry_run: bool,
    session_gap: float | None,
    valid_fraction: float | None,
    no_notes: bool,
) -> None:
    """Turn the store into a training dataset under datasets/<id>/.

    Chats become sessions whose turns by you are the targets and whose earlier turns are the
    context; notes become completion text; the most recent part of each source is held out.
    Files: train.jsonl, valid.jsonl ({"messages": [...]} / {"text": ...}), dataset.json, card.md.

    \b
    Examples:
      selftune build
      selftune build --dry-run
      selftune build --session-gap 30 --valid-fraction 0.1
    """
    apply_overrides(
        ws.config.build,
        {
            "session_gap_minutes": session_gap,
            "valid_fraction": valid_fraction,
            "include_notes": False if no_notes else None,
        },
    )
    from selftune.dataset import card_markdown

    info, dataset_id = run_build(ws, dry_run)
    click.echo(card_markdown(info, dataset_id or "(dry run)"))
    if dataset_id:
        click.echo(f"Wrote {ws.datasets_dir / dataset_id}. Next: selftune train")


@click.command()
@workspace_option
@click.option("--base", metavar="MODEL", help="'embedded' (default), a model id, or a local path.")
@click.option("--dataset", metavar="ID", help="Dataset id (default: the latest).")
@click.option("--max-steps", type=int, help="Stop after N optimizer steps.")
@click.option("--minutes", type=float, help="Stop after M minutes of training.")
@click.option("--epochs", type=float, help="Passes over the training data.")
@click.option("--learning-rate", "--lr", type=float, help="Peak learning rate.")
@click.option("--batch-size", type=int, help="Examples per step.")
@click.option("--precision", type=click.Choice(["auto", "bf16", "fp32"]), help="Numeric precision.")
def train(ws: Workspace, dataset: str | None, **overrides: object) -> None:
    """Fine-tune a LoRA adapter on the latest dataset; saves it under runs/<id>/.

    Shows a progress bar, training loss and validation loss; --max-steps and --minutes bound
    the run (useful on a CPU). Settings come from `train:` in twin.yaml; flags override them.

    \b
    Examples:
      selftune train --minutes 10
      selftune train --max-steps 200 --lr 1e-4
      selftune train --base Qwen/Qwen2.5-1.5B-Instruct --dataset 20261123-101500
    """
    from selftune.train import train as run_training

    apply_overrides(ws.config.train, overrides)
    dataset_dir = ws.resolve("datasets", dataset)
    run_dir = ws.new_artefact_dir("runs")
    click.echo(f"Training on {dataset_dir.name} → {run_dir}")
    summary = run_training(dataset_dir, run_dir, ws.config.train)
    valid = f"{summary['valid_loss']:.3f}" if summary["valid_loss"] is not None else "-"
    click.echo(
        f"Done: {summary['steps']} steps, {summary['epochs']} epochs in {summary['seconds']:.0f}s "
        f"({summary['tokens_per_second']:.0f} tokens/s, {summary['precision']}); "
        f"train loss {summary['train_loss']:.3f}, validation loss {valid}. Next: selftune eval"
    )


@click.command("eval")
@workspace_option
@click.option("--run", "run_id", metavar="ID", help="Run id (default: the latest).")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
def eval_command(ws: Workspace, run_id: str | None, as_json: bool) -> None:
    """Compare the base and the tuned model on the held-out split; writes reports/<id>/report.json.

    \b
    Examples:
      selftune eval
      selftune eval --json | jq .perplexity
    """
    from selftune.evaluate import evaluate_run

    run_dir = ws.resolve("runs", run_id)
    info = json.loads((run_dir / "run.json").read_text()) if (run_dir / "run.json").exists() else {}
    dataset_dir = ws.resolve("datasets", info.get("dataset"))
    report = evaluate_run(run_dir, dataset_dir, ws.config.train.max_seq_len)
    folder = ws.new_artefact_dir("reports")
    report["id"] = folder.name
    (folder / "report.json").write_text(json.dumps(report, indent=2) + "\n")
    if as_json:
        click.echo(json.dumps(report, indent=2))
        return
    ppl = report["perplexity"]
    click.echo(
        f"Held-out perplexity ({report['scored_tokens']} of your tokens): base {ppl['base']:.2f} → tuned {ppl['tuned']:.2f}"
    )
    for source, row in report["perplexity_by_source"].items():
        click.echo(
            f"  {source:18} base {row['base']:.2f} → tuned {row['tuned']:.2f}  ({row['tokens']} tokens)"
        )
    click.echo(f"Report: {folder / 'report.json'}")


COMMANDS = [build, train, eval_command]  # sample: see use_commands.py
