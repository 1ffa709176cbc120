"""Options shared by several commands, and flags derived from the typed config (`config_option`)."""

from __future__ import annotations

from collections.abc import Callable
from types import UnionType
from typing import Any, Literal, Union, get_args, get_origin

import click
from pydantic import BaseModel

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
        ws = find_workspace(workspace)
        if ws.found == "parent":  # not where the user stands: say which twin this acts on
            click.echo(f"Using the workspace {ws.root} (twin.yaml in a parent folder)", err=True)
        return ctx.invoke(fn, ws=ws, **kwargs)

    wrapper.__name__ = fn.__name__
    wrapper.__doc__ = fn.__doc__
    # options declared on `fn` itself stay on the command, listed before --workspace
    wrapper.__click_params__ = wrapper.__click_params__ + getattr(fn, "__click_params__", [])  # type: ignore[attr-defined]
    return wrapper


def resume_option(what: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """`--resume [RUN]`: continue an interrupted run (the latest, or RUN), passed as `resume_id`."""
    return click.option(
        "--resume",
        "resume_id",
        is_flag=False,
        flag_value="latest",
        default=None,
        metavar="[RUN]",
        help=f"Continue an interrupted {what} (the latest, or RUN).",
    )


def _unwrap(annotation: Any) -> tuple[Any, bool]:
    """(the type without None, whether the field is a list)."""
    args = [a for a in get_args(annotation) if a is not type(None)]
    if get_origin(annotation) in (Union, UnionType):
        lists = [a for a in args if get_origin(a) is list]
        annotation = lists[0] if lists else args[0]
    if get_origin(annotation) is list:
        return get_args(annotation)[0], True
    return annotation, False


def _click_type(annotation: Any) -> Any:
    if get_origin(annotation) is Literal:
        return click.Choice([str(v) for v in get_args(annotation)])
    if get_origin(annotation) in (Union, UnionType):  # e.g. list[str] | Literal["all-linear"]
        annotation = [a for a in get_args(annotation) if a is not type(None)][0]
    return {int: click.INT, float: click.FLOAT}.get(annotation, click.STRING)


def config_option(
    section: type[BaseModel], field: str, *names: str, **extra: Any
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """A command-line flag for a config field, derived from the typed config: the flag name
    (`--learning-rate` for `learning_rate`, plus any alias in `names`), its type and choices,
    and its help text (the field's description, the same comment twin.yaml shows).

    The parameter arrives as `field` with None when the flag is not given, so it can go straight
    into `apply_overrides`; repeatable (list) fields arrive as a tuple (see `overrides`). A bool
    field becomes `--field/--no-field` unless `names` spell the flag (e.g. "--notes/--no-notes").
    """
    info = section.model_fields[field]
    annotation, many = _unwrap(info.annotation)
    flag = "--" + field.replace("_", "-")
    decls = [*names] if names and any("/" in n for n in names) else [flag, *names]
    kwargs: dict[str, Any] = {"default": None, "help": info.description}
    if annotation is bool:
        if not any("/" in d for d in decls):
            decls = [f"{flag}/--no-{field.replace('_', '-')}", *names]
        kwargs["default"] = None
    else:
        kwargs["type"] = _click_type(annotation)
        if many:
            kwargs["multiple"] = True
            kwargs["default"] = ()
    kwargs.update(extra)
    return click.option(*decls, field, **kwargs)


def overrides(values: dict[str, Any]) -> dict[str, Any]:
    """Option values as config overrides: None and empty repeats mean 'not given'."""
    out: dict[str, Any] = {}
    for key, value in values.items():
        if isinstance(value, tuple):
            value = list(value) or None
        out[key] = value
    return out
