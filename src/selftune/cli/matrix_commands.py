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


COMMANDS = [matrix]
