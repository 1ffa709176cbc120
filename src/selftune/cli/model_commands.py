"""Commands for the model stages: build, train, eval, sample."""

from __future__ import annotations

import json
import time

import click

from selftune.cli.options import workspace_option
from selftune.config import apply_overrides
from selftune.workspace import Workspace


def owner_name(ws: Workspace) -> str:
    return ws.config.me[0] if ws.config.me else "the owner"


def run_build(ws: Workspace, dry_run: bool = False, canaries: int = 0) -> tuple[dict, str | None]:
    """Build a dataset from the store; returns (card, dataset id or None for a dry run).
    `canaries` random secrets are planted in the training split (see selftune.canaries)."""
    from selftune.dataset import build_dataset, card, write_dataset
    from selftune.models import load_tokenizer

    tokenizer = load_tokenizer(ws.config.train.base)

    def count(text: str) -> int:
        return len(tokenizer.encode(text, add_special_tokens=False))

    with ws.open_store() as store:
        store.apply_identity(ws.config.me)
        data = build_dataset(store, ws.config.build, owner_name(ws), count)
    planted = []
    if canaries:
        from selftune.canaries import plant_canaries

        planted = plant_canaries(data.train, canaries, seed=ws.config.train.seed)
    info = card(data, ws.config.build, ws.config.train.base)
    if dry_run:
        return info, None
    folder = ws.new_artefact_dir("datasets")
    write_dataset(data, folder, info)
    if planted:
        from selftune.canaries import write_canaries

        write_canaries(folder, planted)
    return info, folder.name


@click.command()
@workspace_option
@click.option("--dry-run", is_flag=True, help="Print the dataset card without writing anything.")
@click.option(
    "--session-gap", type=float, metavar="MINUTES", help="Silence that starts a new session."
)
@click.option("--valid-fraction", type=float, help="Share of each source held out (most recent).")
@click.option("--no-notes", is_flag=True, help="Leave notes out of the dataset.")
@click.option(
    "--canaries",
    type=click.IntRange(min=0),
    default=0,
    metavar="K",
    help="Plant K random secrets in the training data; `selftune eval` reports if they leak.",
)
def build(
    ws: Workspace,
    dry_run: bool,
    session_gap: float | None,
    valid_fraction: float | None,
    no_notes: bool,
    canaries: int,
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
      selftune build --canaries 5
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

    info, dataset_id = run_build(ws, dry_run, canaries)
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


@click.command()
@workspace_option
@click.argument("prompt")
@click.option("-n", type=int, help="How many candidates (default from twin.yaml: 4).")
@click.option("--temperature", "-t", type=float, help="Sampling temperature; 0 is greedy.")
@click.option("--top-p", type=float, help="Nucleus sampling threshold.")
@click.option("--max-tokens", type=int, help="Most new tokens per candidate.")
@click.option("--seed", type=int, help="Random seed, for repeatable samples.")
@click.option(
    "--chat", is_flag=True, help="Treat PROMPT as a message sent to you, and reply to it."
)
@click.option("--base-only", is_flag=True, help="Sample from the base model, without the adapter.")
@click.option("--run", "run_id", metavar="ID", help="Run id (default: the latest).")
@click.option("--json", "as_json", is_flag=True, help="Print the candidates as a JSON list.")
def sample(
    ws: Workspace,
    prompt: str,
    chat: bool,
    base_only: bool,
    run_id: str | None,
    as_json: bool,
    seed: int | None,
    **overrides: object,
) -> None:
    """Print N candidates for PROMPT from the tuned model, numbered, so you can pick.

    By default PROMPT is text to continue, like a note you started; with --chat it is a
    message someone sent you, and the candidates are your replies.

    \b
    Examples:
      selftune sample "Here is a list of ideas for my next tattoo: 1." -n 8
      selftune sample "are you coming sunday?" --chat -n 3 --seed 1
      selftune sample "Dear diary," --base-only --json
    """
    from selftune.generate import chat_prompt
    from selftune.generate import sample as generate
    from selftune.models import load_model, load_tokenizer, load_tuned

    apply_overrides(ws.config.sample, overrides)
    settings = ws.config.sample
    if base_only:
        model, tokenizer = load_model(ws.config.train.base), load_tokenizer(ws.config.train.base)
    else:
        model, tokenizer = load_tuned(ws.resolve("runs", run_id))
    text = prompt
    if chat:
        owner = owner_name(ws)
        system = ws.config.build.system_prompt.format(
            owner=owner, platform="WhatsApp", conversation="a chat"
        )
        text = chat_prompt(tokenizer, system, prompt)
    started = time.monotonic()
    candidates = generate(
        model,
        tokenizer,
        text,
        settings.n,
        settings.temperature,
        settings.top_p,
        settings.max_tokens,
        seed,
    )
    if as_json:
        click.echo(json.dumps(candidates, ensure_ascii=False))
        return
    for i, candidate in enumerate(candidates, start=1):
        shown = candidate if chat else prompt + candidate
        click.echo(f"[{i}] {shown}\n")
    click.echo(f"({len(candidates)} candidates in {time.monotonic() - started:.1f}s)", err=True)


COMMANDS = [build, train, sample]
