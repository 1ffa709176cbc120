"""Options shared by several commands."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import click

from selftune.workspace import find_workspace


def workspace_option(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Adds `--workspace DIR` and passes the found Workspace as the `ws` argument."""

    @click.option(
        "--workspace",
        "-w",
        "workspace",
        metavar="DIR",
        envvar="SELFTUNE_WORKSPACE",
        help="The twin workspace (default: the current directory or a parent of it).",
    )
    @click.pass_context
    def wrapper(ctx: click.Context, workspace: str | None, **kwargs: Any) -> Any:
        return ctx.invoke(fn, ws=find_workspace(workspace), **kwargs)

    wrapper.__name__ = fn.__name__
    wrapper.__doc__ = fn.__doc__
    # options declared on `fn` itself stay on the command, listed before --workspace
    wrapper.__click_params__ = wrapper.__click_params__ + getattr(fn, "__click_params__", [])  # type: ignore[attr-defined]
    return wrapper
