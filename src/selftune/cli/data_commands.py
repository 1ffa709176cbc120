"""Commands for the data stages: init, formats, ingest, messages, notes."""

from __future__ import annotations

import json
from pathlib import Path

import click

from selftune.cli.options import workspace_option
from selftune.errors import SelftuneError
from selftune.ingest import parsers
from selftune.ingest.importer import ingest_paths
from selftune.workspace import Workspace, init_workspace


@click.command()
@click.argument("directory", type=click.Path(file_okay=False, path_type=Path))
@click.option(
    "--me",
    multiple=True,
    metavar="NAME",
    help="Your name/handle/number/address in exports (repeatable).",
)
@click.option("--name", help="A name for the twin (default: the folder name).")
def init(directory: Path, me: tuple[str, ...], name: str | None) -> None:
    """Create a twin workspace in DIRECTORY.

    \b
    It holds twin.yaml (settings, with comments), store.sqlite, and the
    folders datasets/, runs/ and reports/.

    \b
    Examples:
      selftune init mytwin --me "Mags"
      selftune init ~/twins/me --me "Marguerite Okonkwo-Hale" --me mags@example.org
    """
    ws = init_workspace(directory, list(me), name)
    click.echo(f"Workspace ready in {ws.root}")
    if not ws.config.me:
        click.echo("Tip: say who you are in exports with `me:` in twin.yaml (or --me).")
    click.echo(f"Next: cd {directory} && selftune ingest PATH...")


@click.command()
def formats() -> None:
    """List the export formats `selftune ingest` understands.

    \b
    Example:
      selftune formats
    """
    for name, parser in parsers().items():
        click.echo(f"{name:12} {parser.description}")


@click.command()
@workspace_option
@click.argument("paths", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--format", "fmt", metavar="NAME", help="Force a format (see `selftune formats`).")
@click.option("--me", multiple=True, metavar="NAME", help="Extra owner names for this import.")
@click.option(
    "--verbose", "-v", is_flag=True, help="List every skipped line, not just the first few."
)
def ingest(
    ws: Workspace, paths: tuple[Path, ...], fmt: str | None, me: tuple[str, ...], verbose: bool
) -> None:
    """Read exports (files or folders) into the workspace's store.

    Importing the same export twice adds nothing; a newer export of the same chat adds only
    the new messages. Raw files are never modified.

    \b
    Examples:
      selftune ingest "WhatsApp Chat with Tobias.txt"
      selftune ingest ~/Exports/whatsapp/ ~/Notes/vault/
      selftune ingest notes.txt --format markdown
      selftune ingest matrix      # your rooms on your homeserver (`selftune matrix login` first;
                                  # a file called matrix: ./matrix)
    """
    owner_names = tuple(ws.config.me) + me
    if paths == (Path("matrix"),) and not fmt:
        _ingest_matrix(ws, me)
        return
    with ws.open_store() as store, _progress(paths) as bar:
        summaries = ingest_paths(store, list(paths), owner_names, fmt, progress=bar.update)
        total_skipped = 0
        for summary in summaries:
            click.echo(summary.line())
            for skipped in summary.skipped[: None if verbose else 5]:
                click.echo(f"    skipped {skipped.origin}: {skipped.reason}")
            if len(summary.skipped) > 5 and not verbose:
                click.echo(f"    … and {len(summary.skipped) - 5} more (use --verbose)")
            total_skipped += len(summary.skipped)
        _report_owners(store)
        counts = store.counts()
    click.echo(
        f"Store: {counts['messages']} messages ({counts['my_messages']} yours) in "
        f"{counts['conversations']} conversations, {counts['notes']} notes."
        + (f" {total_skipped} item(s) skipped, listed above." if total_skipped else "")
    )
    if counts["messages"] and not counts["my_messages"]:
        click.echo(
            "Warning: none of the messages is marked as yours. Add your name as it appears in "
            "the export under `me:` in twin.yaml (or --me) and ingest again.",
            err=True,
        )


def _ingest_matrix(ws: Workspace, me: tuple[str, ...]) -> None:
    from selftune.matrix import ingest_matrix

    result = ingest_matrix(ws, me)
    summary = result.summary
    click.echo(
        f"{summary.path}: {result.events} events in {len(result.rooms)} rooms, "
        f"{summary.messages_added} new of {summary.messages_seen} messages"
        + (f", {result.redacted} redacted message(s) deleted" if result.redacted else "")
    )
    for room in result.rooms:
        if room.platform != "matrix":
            click.echo(f"  {room.title}: bridged from {room.platform}")
    for skipped in summary.skipped:
        click.echo(f"    skipped {skipped.origin}: {skipped.reason}")
    with ws.open_store() as store:
        _report_owners(store)
        counts = store.counts()
    click.echo(
        f"Store: {counts['messages']} messages ({counts['my_messages']} yours) in "
        f"{counts['conversations']} conversations, {counts['notes']} notes."
    )


PROGRESS_FROM_BYTES = 5_000_000


def _progress(paths: tuple[Path, ...]):  # type: ignore[no-untyped-def]
    """A record counter on stderr for big inputs (silent for small ones and in pipes)."""
    from tqdm import tqdm

    size = 0
    for path in paths:
        if path.is_file():
            size += path.stat().st_size
        elif path.is_dir():
            size += sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
        if size >= PROGRESS_FROM_BYTES:
            break
    return tqdm(
        unit=" records",
        desc="Reading",
        disable=size < PROGRESS_FROM_BYTES or None,  # None: off when stderr is not a terminal
        leave=False,
    )


def _report_owners(store) -> None:  # type: ignore[no-untyped-def]
    for title, owners, count in store.owners_by_conversation():
        who = owners or "nobody (set `me:` in twin.yaml)"
        click.echo(f"  {title}: {count} messages; you are {who}")


@click.command()
@workspace_option
@click.option("--jsonl", is_flag=True, help="One JSON object per line (for scripts).")
@click.option("--conversation", metavar="ID", help="Only this conversation id.")
def messages(ws: Workspace, jsonl: bool, conversation: str | None) -> None:
    """List the messages in the store, in conversation and time order.

    \b
    Examples:
      selftune messages | less
      selftune messages --jsonl | jq 'select(.is_me) | .text'
    """
    with ws.open_store() as store:
        for m in store.messages(conversation):
            if jsonl:
                record = {
                    "id": m.id,
                    "source": m.source,
                    "conversation_id": m.conversation_id,
                    "conversation_title": m.conversation_title,
                    "conversation_kind": m.conversation_kind,
                    "timestamp": m.timestamp.isoformat(),
                    "author": m.author,
                    "author_id": m.author_id,
                    "is_me": bool(m.is_me),
                    "kind": m.kind,
                    "text": m.text,
                    "reply_to": m.reply_to,
                    "origin": m.origin,
                    "extra": m.extra,
                }
                click.echo(json.dumps(record, ensure_ascii=False))
            else:
                who = f"{m.author}{' (me)' if m.is_me else ''}" if m.author else "*"
                text = m.text if m.kind == "text" else f"[{m.kind}] {m.text}"
                click.echo(f"{m.timestamp:%Y-%m-%d %H:%M} {m.conversation_title} | {who}: {text}")


@click.command()
@workspace_option
@click.option("--jsonl", is_flag=True, help="One JSON object per line (for scripts).")
def notes(ws: Workspace, jsonl: bool) -> None:
    """List the notes in the store.

    \b
    Examples:
      selftune notes
      selftune notes --jsonl | jq -r .title
    """
    with ws.open_store() as store:
        for n in store.notes():
            if jsonl:
                record = {
                    "id": n.id,
                    "source": n.source,
                    "title": n.title,
                    "path": n.path,
                    "text": n.text,
                    "created": n.created.isoformat() if n.created else None,
                    "modified": n.modified.isoformat() if n.modified else None,
                    "tags": n.tags,
                    "links": n.links,
                    "blocks": [b.to_dict() for b in n.blocks],
                }
                click.echo(json.dumps(record, ensure_ascii=False))
            else:
                click.echo(f"{n.title} ({n.source}: {n.path}, {len(n.text.split())} words)")


@click.command()
@workspace_option
@click.option(
    "--merge",
    nargs=2,
    metavar="ALIAS NAME",
    multiple=True,
    help="ALIAS is the same person as NAME.",
)
@click.option("--unmerge", metavar="ALIAS", multiple=True, help="Undo --merge for ALIAS.")
@click.option(
    "--exclude", metavar="NAME", multiple=True, help="Never train on NAME's messages (consent)."
)
@click.option("--include", metavar="NAME", multiple=True, help="Undo --exclude for NAME.")
@click.option(
    "--me", metavar="NAME", multiple=True, help="NAME is you (marks their messages as yours)."
)
@click.option("--jsonl", is_flag=True, help="One JSON object per person (for scripts).")
@click.option("--memory", "memory_of", metavar="NAME", help="Show what memory holds for NAME.")
def people(
    ws: Workspace,
    merge: tuple[tuple[str, str], ...],
    unmerge: tuple[str, ...],
    exclude: tuple[str, ...],
    include: tuple[str, ...],
    me: tuple[str, ...],
    jsonl: bool,
    memory_of: str | None,
) -> None:
    """List the people in the store, merge their aliases, exclude them, or say which are you.

    \b
    Examples:
      selftune people
      selftune people --merge "Tobi" "Tobias Müller" --merge +447700900456 "Tobias Müller"
      selftune people --exclude "Ana Lima"     # her messages are never trained on
      selftune people --me "mags_o" --me mags@example.org
      selftune people --memory "Tobias"      # what the twin remembers of him
    """
    if memory_of:
        from selftune.cli.memory_commands import show_contact

        return show_contact(ws, memory_of)
    with ws.open_store() as store:
        named = {n for pair in merge for n in pair}  # names this command itself introduces
        consent = [  # checked before anything changes: a typo must not half-apply a command
            (spellings, excluded)
            for flag, names, excluded in (
                ("--exclude", exclude, True),
                ("--include", include, False),
            )
            for name in names
            for spellings in [[name] if name in named else known_person(store, flag, name)]
        ]
        for alias, name in merge:
            if alias == name:
                raise SelftuneError(f"--merge {alias!r} {name!r}: a name cannot be its own alias")
            store.set_person(alias, alias_of=name)
            store.set_person(name)
        for alias in unmerge:
            store.set_person(alias, alias_of="")
        for spellings, excluded in consent:
            for spelling in spellings:
                store.set_person(spelling, excluded=excluded)
        for name in me:
            store.set_person(name, is_me=True)
        if me or merge:
            store.apply_identity(tuple(ws.config.me))
        everyone = store.people()
    for person in everyone:
        if jsonl:
            click.echo(json.dumps(person, ensure_ascii=False))
            continue
        flags = [f for f, on in (("you", person["is_me"]), ("excluded", person["excluded"])) if on]
        aliases = f" (also {', '.join(person['aliases'])})" if person["aliases"] else ""
        click.echo(
            f"{person['messages']:7} msgs {person['conversations']:4} convs  {person['name']}{aliases}"
            f"  [{', '.join(person['sources'])}]" + (f"  <{', '.join(flags)}>" if flags else "")
        )
    if not everyone and not jsonl:
        click.echo("No messages yet; run `selftune ingest PATH` first.")


def known_person(store, flag: str, name: str) -> list[str]:  # type: ignore[no-untyped-def]
    """The store's spellings of `name` (any letter case), or an error naming who is there: an
    exclusion that matches nobody would leave that person's chats in the training data."""
    spellings = store.match_person(name)
    if spellings:
        return spellings
    import difflib

    close = difflib.get_close_matches(name, store.known_names(), n=3, cutoff=0.6)
    hint = f" Did you mean {' or '.join(repr(c) for c in close)}?" if close else ""
    raise SelftuneError(
        f"{flag} {name!r}: nobody of that name (in any letter case) is in the store, so nothing "
        f"was changed.{hint} `selftune people` lists everyone."
    )


COMMANDS = [init, formats, ingest, messages, notes, people]
