"""`selftune build`: turn the store into a dataset folder (or, with --dry-run, only its card)."""

from __future__ import annotations

import click

from selftune.build import run_build
from selftune.cli.options import workspace_option
from selftune.config import apply_overrides
from selftune.workspace import Workspace


@click.command()
@workspace_option
@click.option("--dry-run", is_flag=True, help="Print the dataset card without writing anything.")
@click.option(
    "--session-gap", type=float, metavar="MINUTES", help="Silence that starts a new session."
)
@click.option("--valid-fraction", type=float, help="Share of each source held out.")
@click.option(
    "--split",
    type=click.Choice(["chronological", "conversation"]),
    help="Hold out the most recent sessions (default) or whole conversations.",
)
@click.option("--no-notes", is_flag=True, help="Leave notes out of the dataset.")
@click.option("--no-scrub", is_flag=True, help="Keep emails, phone numbers etc. as they are.")
@click.option(
    "--dedupe", type=click.Choice(["off", "exact", "near"]), help="Which repeats to leave out."
)
@click.option("--language", "languages", multiple=True, help="Keep only this language (repeat).")
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
    split: str | None,
    no_notes: bool,
    no_scrub: bool,
    dedupe: str | None,
    languages: tuple[str, ...],
    canaries: int,
) -> None:
    """Turn the store into a training dataset under datasets/<id>/.

    Chats become sessions (split at silences); each of your turns is a target with the earlier
    turns of its session as context; others' words are only context. Notes become completion
    text that keeps their structure. PII is replaced by placeholders, `private_facts` from
    twin.yaml never get in, duplicates, bots and forwards are left out (counted in the card),
    and the most recent part of each source is held out. Files: train.jsonl, valid.jsonl
    ({"messages": [...]} / {"text": ...}), *.meta.jsonl, dataset.json, card.md. The same store
    and settings always give the same bytes. All settings: `build:` in twin.yaml.

    \b
    Examples:
      selftune build
      selftune build --dry-run
      selftune build --session-gap 30 --valid-fraction 0.1 --split conversation
      selftune build --language en --language de --no-notes
      selftune build --canaries 5
    """
    apply_overrides(
        ws.config.build,
        {
            "session_gap_minutes": session_gap,
            "valid_fraction": valid_fraction,
            "split": split,
            "include_notes": False if no_notes else None,
            "scrub_pii": False if no_scrub else None,
            "dedupe": dedupe,
            "languages": list(languages) or None,
        },
    )
    from selftune.build.card import card_markdown

    info, dataset_id = run_build(ws, dry_run, canaries=canaries)
    click.echo(card_markdown(info, dataset_id or "(dry run: nothing written)"))
    if dataset_id:
        click.echo(f"Wrote {ws.datasets_dir / dataset_id}. Next: selftune train")


COMMANDS = [build]
