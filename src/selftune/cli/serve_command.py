"""`selftune serve`: the twin's session (`selftune.use.TwinSession`) behind the HTTP server."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import click

from selftune.cli.options import workspace_option
from selftune.cli.use_commands import ENGINE_CHOICE, say
from selftune.config import apply_overrides
from selftune.errors import SelftuneError
from selftune.use import TwinSession
from selftune.workspace import Workspace


def read_api_key(path: Path | None) -> str | None:
    """The key from --api-key-file, else $SELFTUNE_API_KEY, else None (twin.yaml's applies)."""
    if path is not None:
        key = path.read_text(encoding="utf-8").strip()
        if not key:
            raise SelftuneError(f"{path} is empty; put the API key in it")
        return key
    return os.environ.get("SELFTUNE_API_KEY") or None


@click.command()
@workspace_option
@click.option("--host", help="Address to bind (default 127.0.0.1; others need an API key).")
@click.option("--port", type=int, help="Port (default 8000).")
@click.option("--engine", type=ENGINE_CHOICE, help="auto, transformers, llamacpp or openai.")
@click.option("--upstream", metavar="URL", help="--engine openai: the OpenAI-compatible server.")
@click.option("--upstream-model", metavar="NAME", help="--engine openai: model name upstream.")
@click.option(
    "--api-key-file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Require 'Authorization: Bearer KEY', KEY read from this file (or $SELFTUNE_API_KEY; "
    "never on the command line, where `ps` shows it).",
)
@click.option("--no-log", is_flag=True, help="Keep nothing in store.sqlite for this session.")
def serve(ws: Workspace, no_log: bool, api_key_file: Path | None, **overrides: object) -> None:
    """Serve the twin: an OpenAI-compatible API and a web page, on this machine only by default.

    Models: `twin` (latest run), `base`, and each run by id. Open http://127.0.0.1:8000/ for
    chat, "give me N" and the blind game; point any OpenAI client at http://127.0.0.1:8000/v1.

    \b
    Examples:
      selftune serve
      selftune serve --engine llamacpp --port 8080
      selftune serve --engine openai --upstream http://127.0.0.1:8080/v1
      openssl rand -hex 16 > ~/.twin-key && chmod 600 ~/.twin-key
      selftune serve --host 0.0.0.0 --api-key-file ~/.twin-key
    """
    import uvicorn

    from selftune.engines import model_catalog
    from selftune.server import ServerState, check_bind, create_app

    apply_overrides(ws.config.serve, {**overrides, "api_key": read_api_key(api_key_file)})
    settings = ws.config.serve
    check_bind(settings.host, settings.api_key)
    session = TwinSession.for_workspace(ws, log=not no_log)
    catalog = model_catalog(ws.runs_dir, ws.config.train.base)
    state = ServerState.from_session(session, catalog, settings, ws.reports_dir, echo=say)
    state.scheduler("twin")  # load the default model before taking requests
    for name in state.model_names():
        choice = state.engine_choice(name)
        when = "loaded" if name in state.engines else "loads on first use"
        say(f"  {name:14} {choice.describe() if choice else '?'} ({when})")
    say(
        f"Serving {session.twin.owner}'s twin on http://{settings.host}:{settings.port}/ "
        "(API: /v1). Ctrl-C stops."
    )
    uvicorn.run(create_app(state), host=settings.host, port=settings.port, log_level="warning")
    sys.exit(0)


COMMANDS = [serve]
