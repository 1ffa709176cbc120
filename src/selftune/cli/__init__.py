"""The `selftune` command: one group, with commands defined per pipeline stage in sibling modules."""

from __future__ import annotations

import click

from selftune import __version__
from selftune.errors import SelftuneError


class SelftuneGroup(click.Group):
    """Turns a SelftuneError anywhere below into a clean `Error: ...` message and exit status 1."""

    def invoke(self, ctx: click.Context):  # type: ignore[no-untyped-def]
        try:
            return super().invoke(ctx)
        except SelftuneError as exc:
            raise click.ClickException(str(exc)) from exc


@click.group(cls=SelftuneGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="selftune")
def cli() -> None:
    """Turn what you have written into a private language model that writes like you.

    \b
    A typical first run, inside a new workspace:
      selftune init mytwin --me "Mags" --me "+44 7700 900123" && cd mytwin
      selftune ingest ~/Exports/WhatsApp\\ Chat\\ with\\ Tobias.txt ~/Notes
      selftune build
      selftune train --minutes 10
      selftune eval
      selftune sample "Here is a list of ideas for my next tattoo: 1." -n 8

    Or see it all on a bundled example person: selftune demo
    """


def main() -> None:
    cli(prog_name="selftune")


from selftune.cli import (  # noqa: E402
    build_commands,
    data_commands,
    demo_command,
    eval_commands,
    improve_commands,
    matrix_commands,
    memory_commands,
    serve_command,
    train_commands,
    use_commands,
)

for module in (
    data_commands,
    build_commands,
    train_commands,
    eval_commands,
    use_commands,
    serve_command,
    improve_commands,
    memory_commands,
    matrix_commands,
    demo_command,
):
    for command in module.COMMANDS:
        cli.add_command(command)
