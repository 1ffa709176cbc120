"""`selftune build`: turn the store into a dataset folder (or, with --dry-run, only its card)."""

from __future__ import annotations

import click

from selftune.cli.options import config_option, overrides, workspace_option
from selftune.config import BuildConfig, MemoryConfig, apply_overrides
from selftune.dataset import run_build
from selftune.workspace import Workspace

B = BuildConfig


@click.command()
@workspace_option
@click.option("--dry-run", is_flag=True, help="Print the dataset card without writing anything.")
@config_option(B, "session_gap_minutes", "--session-gap", metavar="MINUTES")
@config_option(B, "valid_fraction")
@config_option(B, "split")
@config_option(B, "include_notes", "--notes/--no-notes")
@config_option(B, "scrub_pii", "--scrub/--no-scrub")
@config_option(B, "dedupe")
@config_option(B, "languages", "--language")
@config_option(MemoryConfig, "enabled", "--memory/--no-memory")
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
    canaries: int,
    **options: object,
) -> None:
    """Turn the store into a training dataset under datasets/<id>/.

    Chats become sessions (split at silences); each of your turns is a target with the earlier
    turns of its session as context; others' words are only context. Notes become completion
    text that keeps their structure. PII is replaced by placeholders, `private_facts` from
    twin.yaml never get in, duplicates, bots and forwards are left out (counted in the card),
    and the most recent part of each source is held out. Files: train.jsonl, valid.jsonl
    ({"messages": [...]} / {"text": ...}), *.meta.jsonl, dataset.json, card.md. The same store
    and settings always give the same bytes. Each chat example carries the memory block of its
    own past (docs/memory.md; --no-memory leaves it out). All settings: `build:` in twin.yaml.

    \b
    Examples:
      selftune build
      selftune build --dry-run
      selftune build --session-gap 30 --valid-fraction 0.1 --split conversation
      selftune build --language en --language de --no-notes
      selftune build --canaries 5
      selftune build --no-memory
    """
    apply_overrides(ws.config.memory, {"enabled": options.pop("enabled", None)})
    apply_overrides(ws.config.build, overrides(options))
    from selftune.dataset.writer import card_markdown

    info, dataset_id = run_build(ws, dry_run, canaries=canaries)
    click.echo(card_markdown(info, dataset_id or "(dry run: nothing written)"))
    if dataset_id:
        click.echo(f"Wrote {ws.datasets_dir / dataset_id}. Next: selftune train")


COMMANDS = [build]
