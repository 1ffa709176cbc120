"""`selftune matrix login` and `selftune matrix bot` (docs/matrix.md); `ingest matrix` is in
data_commands with the other imports."""

from __future__ import annotations

import asyncio

import click

from selftune.cli.options import workspace_option
from selftune.errors import SelftuneError
from selftune.workspace import Workspace


@click.group()
def matrix() -> None:
    """Your Matrix account: log in, and the bot that drafts your replies.

    \b
    Examples:
      selftune matrix login --homeserver https://matrix.example.org --user @me:example.org
      selftune matrix rooms
      selftune ingest matrix
      selftune matrix bot
    """


@matrix.command()
@workspace_option
@click.option("--homeserver", required=True, metavar="URL", help="Your homeserver's URL.")
@click.option("--user", "user", required=True, metavar="@ME:SERVER", help="Your Matrix user id.")
@click.option(
    "--password",
    envvar="SELFTUNE_MATRIX_PASSWORD",
    metavar="PW",
    help="Your password (asked for, hidden, when neither it nor --token is given).",
)
@click.option(
    "--token",
    envvar="SELFTUNE_MATRIX_TOKEN",
    metavar="TOKEN",
    help="An access token you already have (e.g. from Element), instead of a password.",
)
def login(
    ws: Workspace, homeserver: str, user: str, password: str | None, token: str | None
) -> None:
    """Log in to your homeserver; the access token is kept in secrets/matrix.json (0600).

    The token is never written to twin.yaml and never printed.
    """
    from selftune.matrix.account import normalise_user, save_account
    from selftune.matrix.client import check_token
    from selftune.matrix.client import login as password_login

    homeserver = homeserver.rstrip("/")
    if not homeserver.startswith(("http://", "https://")):
        raise SelftuneError(f"--homeserver {homeserver!r}: give a URL like https://{homeserver}")
    user_id = normalise_user(user, homeserver)
    if token:
        account = asyncio.run(check_token(homeserver, user_id, token))
    else:
        if password is None:
            password = click.prompt(f"Password for {user_id}", hide_input=True)
        account = asyncio.run(
            password_login(homeserver, user_id, password, f"selftune {ws.root.name}")
        )
    path = save_account(ws.root, account)
    click.echo(
        f"Logged in as {account.user_id} on {account.homeserver}"
        + (f" (device {account.device_id})" if account.device_id else "")
        + f"; the token is in {path} (readable by you only)."
    )
    click.echo("Next: selftune ingest matrix")


@matrix.command()
@workspace_option
def rooms(ws: Workspace) -> None:
    """List the rooms you have joined: id, name, messenger, people, and whether the bot may
    draft there (`matrix.rooms` in twin.yaml) and `ingest matrix` reads it.

    \b
    Example:
      selftune matrix rooms
    """
    from selftune.matrix.history import joined_rooms
    from selftune.twin import platform_name

    settings = ws.config.matrix
    for room in joined_rooms(ws):
        marks = []
        if room.room_id in settings.rooms:
            marks.append("bot drafts here")
        if settings.ingest_rooms and room.room_id not in settings.ingest_rooms:
            marks.append("not ingested")
        if room.encrypted:
            marks.append("encrypted: skipped")
        where = platform_name(room.platform) if room.platform != "matrix" else "Matrix"
        click.echo(
            f"{room.room_id}  {room.title} ({where}, {room.kind}, {len(room.people)} people)"
            + (f"  [{'; '.join(marks)}]" if marks else "")
        )


@matrix.command()
@workspace_option
@click.option("--run", "run_id", metavar="ID", help="Run id (default: the latest).")
@click.option("--base-only", is_flag=True, help="Draft with the base model, without the adapter.")
@click.option(
    "--engine",
    type=click.Choice(["auto", "transformers", "llamacpp", "openai"]),
    help="auto (llama.cpp unless it cannot run), transformers, llamacpp, openai.",
)
def bot(ws: Workspace, run_id: str | None, base_only: bool, engine: str | None) -> None:
    """Draft your replies in the rooms you allow; send one only when you answer.

    \b
    When someone writes in a room listed under `matrix.rooms` in twin.yaml, the bot
    sends you numbered drafts in your private approvals room. Answer there:
      2            send draft 2 into the room, as you
      e <text>     send your own words instead
      r            reject them all (nothing is sent)
    Every answer is kept as a pick for `selftune distill`. Stop with Ctrl-C; starting
    again resumes where it stopped, without drafting or sending twice.
    """
    from selftune.matrix.account import load_account
    from selftune.matrix.bot import run_bot
    from selftune.matrix.drafting import Drafter

    load_account(ws.root)  # no login: say so before loading a model

    if not ws.config.matrix.rooms:
        click.echo(
            "No rooms are allowed yet (matrix.rooms in twin.yaml is empty): the bot will draft "
            "nowhere. List room ids there, e.g. rooms: ['!abc:example.org'].",
            err=True,
        )
    drafter = Drafter(
        ws, run=run_id, engine_kind=engine or ws.config.serve.engine, base_only=base_only
    )
    click.echo(f"Drafting with {getattr(drafter.engine, 'model_id', 'the twin')}. Ctrl-C stops.")
    run_bot(ws, drafter, echo=click.echo)


COMMANDS = [matrix]
