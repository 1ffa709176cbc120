"""`selftune demo`: every stage on the bundled example person, with timings and the numbers."""

from __future__ import annotations

from pathlib import Path

import click

from selftune.demo import run_demo


@click.command()
@click.option(
    "--workspace",
    "-w",
    "root",
    type=click.Path(file_okay=False, path_type=Path),
    default="selftune-demo",
    show_default=True,
    help="Where to create the demo workspace (cleared if an earlier demo made it).",
)
@click.option("--minutes", type=float, default=3.0, show_default=True, help="Training time budget.")
@click.option("--max-steps", type=int, help="Stop training after N steps (for a quick look).")
@click.option("-n", type=int, default=3, show_default=True, help="Samples per demo prompt.")
def demo(root: Path, minutes: float, max_steps: int | None, n: int) -> None:
    """Run init → ingest → build → train → eval → sample on a bundled example person.

    Mags (fictional) keeps bees and builds violins; her WhatsApp chats and notes ship with
    selftune. On 2 CPU cores the whole demo takes under 10 minutes and shows the held-out
    perplexity of the base model against the tuned one, then a few samples in her voice.

    \b
    Examples:
      selftune demo
      selftune demo --minutes 2 --workspace /tmp/demo
    """
    run_demo(root, minutes, max_steps, n, click.echo)
    click.echo(
        f'\nWorkspace: {root}  (try: selftune sample --workspace {root} "are you free saturday?" --chat)'
    )


COMMANDS = [demo]
