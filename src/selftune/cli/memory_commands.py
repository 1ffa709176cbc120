"""Commands for memory and facts: `selftune facts ...` and `selftune memory ...`."""

from __future__ import annotations

import json

import click

from selftune.cli.options import workspace_option
from selftune.workspace import Workspace


@click.group()
def facts() -> None:
    """Your facts (facts.yaml): what the twin should state right, and what it must never say.

    \b
    Examples:
      selftune facts list
      selftune facts suggest          # candidates found in your own messages and notes
      selftune facts accept 2         # append suggestion 2 to facts.yaml
      selftune facts accept 3 --private
      selftune facts reject 1         # never propose it again
    """


@facts.command("list")
@workspace_option
@click.option("--jsonl", is_flag=True, help="One JSON object per fact.")
def facts_list(ws: Workspace, jsonl: bool) -> None:
    """List the facts in facts.yaml (private ones are shown to you, never to the twin)."""
    from selftune.memory.facts import facts_path, load_facts

    known = load_facts(ws.root)
    if not known.items and not jsonl:
        click.echo(
            f"No facts yet: write them in {facts_path(ws.root)} or run `selftune facts suggest`."
        )
    for i, fact in enumerate(known.items, start=1):
        if jsonl:
            click.echo(json.dumps(fact.model_dump(), ensure_ascii=False))
            continue
        about = f" [{fact.topic}]" if fact.topic else ""
        flag = "  <private>" if fact.private else ""
        click.echo(f"{i:3}. {fact.fact}{about}{flag}")


@facts.command("suggest")
@workspace_option
def facts_suggest(ws: Workspace) -> None:
    """Propose facts found in your own messages and notes, each with where it was found."""
    from selftune.memory.facts import load_facts
    from selftune.memory.suggest import Suggestions

    with ws.open_store() as store:
        candidates = Suggestions.load(ws.root).refresh(store, load_facts(ws.root))
    if not candidates:
        click.echo("Nothing new to suggest (facts already in facts.yaml or rejected are left out).")
        return
    for i, c in enumerate(candidates, start=1):
        click.echo(f"{i:3}. {c.fact}  [{c.topic}; keywords: {', '.join(c.keywords)}]")
        for where in c.where:
            click.echo(f"       found in {where}")
    click.echo("Add one with `selftune facts accept N` (--private if the twin must never say it).")


@facts.command("accept")
@workspace_option
@click.argument("number", type=int)
@click.option("--private", is_flag=True, help="A private fact: never in a prompt or an answer.")
@click.option("--fact", "text", metavar="TEXT", help="Word the fact your way before adding it.")
def facts_accept(ws: Workspace, number: int, private: bool, text: str | None) -> None:
    """Append suggestion NUMBER (from `selftune facts suggest`) to facts.yaml."""
    from selftune.memory.facts import add_fact
    from selftune.memory.suggest import Suggestions

    suggestions = Suggestions.load(ws.root)
    candidate = suggestions.accept(number)
    fact = candidate.as_fact().model_copy(
        update={"private": private, "fact": text or candidate.fact}
    )
    saved = add_fact(ws.root, fact)
    click.echo(f"Added to {saved.path}: {fact.fact}" + (" (private)" if private else ""))


@facts.command("reject")
@workspace_option
@click.argument("number", type=int)
def facts_reject(ws: Workspace, number: int) -> None:
    """Reject suggestion NUMBER: it is not added and never proposed again."""
    from selftune.memory.suggest import Suggestions

    candidate = Suggestions.load(ws.root).reject(number)
    click.echo(f"Rejected: {candidate.fact}")


@click.group()
def memory() -> None:
    """The twin's memory of your conversations: what it holds, and forgetting a contact.

    \b
    Examples:
      selftune memory status
      selftune memory show "Tobias"
      selftune memory forget "Ana Lima"     # out of memory and of every future dataset
    """


@memory.command("status")
@workspace_option
def memory_status(ws: Workspace) -> None:
    """Bring the index up to date and say what it holds."""
    from selftune.memory.facts import load_facts
    from selftune.memory.index import update_index
    from selftune.store.memory_index import index_stats

    with ws.open_store() as store:
        added = update_index(store)
        numbers = index_stats(store)
    known = load_facts(ws.root)
    state = "on" if ws.config.memory.enabled else "off (memory.enabled in twin.yaml)"
    click.echo(
        f"Memory {state}: {numbers['indexed_messages']} messages in "
        f"{numbers['conversations']} conversations indexed ({added} just added); "
        f"{len(known.public)} public and {len(known.private)} private facts; "
        f"block of at most {ws.config.memory.max_tokens} tokens."
    )


@memory.command("show")
@workspace_option
@click.argument("contact")
def memory_show(ws: Workspace, contact: str) -> None:
    """What memory holds for CONTACT: conversations, messages, the latest exchange, facts."""
    show_contact(ws, contact)


def show_contact(ws: Workspace, contact: str) -> None:
    """Print what memory holds for `contact` (also `selftune people --memory NAME`)."""
    from selftune.memory.facts import load_facts
    from selftune.memory.forget import find_person
    from selftune.memory.index import update_index
    from selftune.store.memory_index import (
        contact_conversations,
        conversation_titles,
        indexed_span,
    )

    with ws.open_store() as store:
        update_index(store)
        person = find_person(store, contact)
        names = [person["name"], *person["aliases"]]
        conversations = contact_conversations(store, names)
        count, first, last = indexed_span(store, conversations)
        titles = conversation_titles(store, conversations)
    folded = [n.casefold() for n in names]
    about = [f for f in load_facts(ws.root).items if any(n in f.fact.casefold() for n in folded)]
    from datetime import datetime

    click.echo(
        f"{person['name']}"
        + (f" (also {', '.join(person['aliases'])})" if person["aliases"] else "")
    )
    if person["excluded"]:
        click.echo("  excluded: not in memory, not in any new dataset")
    if count:
        span = (
            f"{datetime.fromtimestamp(first):%Y-%m-%d} to {datetime.fromtimestamp(last):%Y-%m-%d}"
        )
        click.echo(f"  {count} messages in memory from {len(titles)} conversation(s), {span}:")
        for title in titles:
            click.echo(f"    {title}")
    elif not person["excluded"]:
        click.echo("  nothing in memory yet (run `selftune ingest`)")
    for f in about:
        click.echo(f"  fact: {f.fact}" + ("  <private>" if f.private else ""))


@memory.command("forget")
@workspace_option
@click.argument("contact")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
def memory_forget(ws: Workspace, contact: str, yes: bool) -> None:
    """Take CONTACT out of memory and out of every future dataset (consent).

    Their conversations leave the search index, they are excluded from builds, suggestions
    naming them and logged samples quoting them are deleted. The raw messages stay in the
    store so that importing the same export again does not bring them back.
    """
    from selftune.memory.forget import forget_contact

    if not yes:
        click.confirm(
            f"Forget {contact} (memory, future datasets, suggestions, samples)?", abort=True
        )
    with ws.open_store() as store:
        done = forget_contact(store, ws.root, contact)
    click.echo(
        f"Forgot {done.name}: {done.unindexed} messages of {done.conversations} conversation(s) "
        f"left memory, {done.suggestions} suggestion(s) and {done.samples} logged sample(s) "
        "deleted; excluded from every future `selftune build`."
    )
    if done.datasets:
        click.echo(
            f"Existing datasets still hold them: {', '.join(done.datasets)}; delete those folders "
            "(and the runs trained on them) to finish, then `selftune build` again."
        )


COMMANDS = [facts, memory]
