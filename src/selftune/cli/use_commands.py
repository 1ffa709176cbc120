"""Commands that put the twin to work: sample, chat and reply (serve: `serve_command`).

Each parses its options, opens the twin's session (`selftune.use.TwinSession`: the engine, the
twin's prompt and memory block, the output guard, the ranker and the sample log) and prints.
"""

from __future__ import annotations

import json
import time
from typing import IO, Any

import click

from selftune.cli.options import config_option, workspace_option
from selftune.config import SampleConfig, apply_overrides
from selftune.use import TwinSession, parse_conversation
from selftune.workspace import Workspace

ENGINE_CHOICE = click.Choice(["auto", "transformers", "llamacpp", "openai"])


def model_option(fn):  # type: ignore[no-untyped-def]
    fn = click.option(
        "--engine",
        type=ENGINE_CHOICE,
        help="auto (llama.cpp unless it cannot run), transformers, llamacpp, openai (serve.upstream).",
    )(fn)
    fn = click.option("--base-only", is_flag=True, help="Use the base model, without the adapter.")(
        fn
    )
    fn = click.option(
        "--show-prompt",
        is_flag=True,
        help="Print the exact prompt the model gets (system prompt and memory block) to stderr.",
    )(fn)
    fn = click.option(
        "--no-memory", is_flag=True, help="Leave the memory block (facts, past chats) out."
    )(fn)
    return click.option("--run", "run_id", metavar="ID", help="Run id (default: the latest).")(fn)


def open_session(
    ws: Workspace,
    run_id: str | None,
    base_only: bool,
    engine: str | None,
    no_memory: bool,
    show_prompt: bool,
    rank: bool = True,
) -> TwinSession:
    """The twin's session for a command; loading and the model chosen are said on stderr."""
    session = TwinSession.open(
        ws, run_id, engine, base_only, memory=not no_memory, rank=rank, echo=say
    )
    if show_prompt:
        session.show_prompt = show
    return session


def say(line: str) -> None:
    click.echo(line, err=True)


def show(prompt: str) -> None:
    """--show-prompt: the prompt exactly as the model gets it, between two marker lines."""
    click.echo(f"--- prompt ---\n{prompt}\n--- end of prompt ---", err=True)


@click.command()
@workspace_option
@click.argument("prompt")
@config_option(SampleConfig, "n", "-n")
@config_option(SampleConfig, "temperature", "-t")
@config_option(SampleConfig, "top_p")
@config_option(SampleConfig, "max_tokens")
@click.option("--seed", type=int, help="Random seed, for repeatable samples.")
@click.option("--stop", multiple=True, help="Stop a candidate at this text (repeatable).")
@click.option(
    "--chat", is_flag=True, help="Treat PROMPT as a message sent to you, and reply to it."
)
@model_option
@click.option(
    "--rank/--no-rank",
    default=True,
    help="Best-first by the preference ranker, when one is trained (`selftune rank --train`).",
)
@click.option("--json", "as_json", is_flag=True, help="Print the candidates as a JSON list.")
def sample(
    ws: Workspace,
    prompt: str,
    chat: bool,
    no_memory: bool,
    show_prompt: bool,
    base_only: bool,
    run_id: str | None,
    engine: str | None,
    as_json: bool,
    seed: int | None,
    stop: tuple[str, ...],
    rank: bool,
    **overrides: object,
) -> None:
    """Print N candidates for PROMPT from the tuned model, numbered, so you can pick.

    By default PROMPT is text to continue, like a note you started; with --chat it is a
    message someone sent you, and the candidates are your replies. All N are generated
    together in one batch.

    \b
    Examples:
      selftune sample "Here is a list of ideas for my next tattoo: 1." -n 8
      selftune sample "are you coming sunday?" --chat -n 3 --seed 1
      selftune sample "Dear diary," --base-only --json --show-prompt
    """
    apply_overrides(ws.config.sample, overrides)
    session = open_session(ws, run_id, base_only, engine, no_memory, show_prompt, rank)
    started = time.monotonic()
    out = session.sample(prompt, chat, seed=seed, stop=list(stop), rank=rank)
    if as_json:
        click.echo(json.dumps(out.texts, ensure_ascii=False))
        return
    for i, candidate in enumerate(out.texts, start=1):
        shown = candidate if chat else prompt + candidate
        click.echo(f"[{i}] {shown}\n")
    click.echo(
        f"({len(out.texts)} candidates in {time.monotonic() - started:.1f}s, "
        f"{session.engine.name})",
        err=True,
    )


@click.command()
@workspace_option
@model_option
@click.option("--temperature", "-t", type=float, help="Sampling temperature; 0 is greedy.")
@click.option("--max-tokens", type=int, help="Most new tokens per reply.")
@click.option("--as", "contact", metavar="NAME", help="Who is chatting (memory prefers them).")
def chat(
    ws: Workspace,
    run_id: str | None,
    base_only: bool,
    engine: str | None,
    temperature: float | None,
    max_tokens: int | None,
    no_memory: bool,
    show_prompt: bool,
    contact: str | None,
) -> None:
    """Chat with your twin in the terminal; it remembers the conversation until you /reset.

    Type a message and press Enter; the reply streams as it is written. /reset starts over,
    /quit (or Ctrl-D) leaves. --show-prompt prints each turn's prompt before the reply.

    \b
    Examples:
      selftune chat
      selftune chat --base-only -t 0.5
    """
    session = open_session(ws, run_id, base_only, engine, no_memory, show_prompt)
    history: list[dict[str, Any]] = []
    click.echo(
        f"Chatting with {session.twin.owner}'s twin ({session.engine.model_id}, "
        f"{session.engine.name}). /quit to leave."
    )
    while True:
        try:
            line = input("you> ").strip()
        except EOFError:
            break
        if line in ("/quit", "/exit"):
            break
        if line == "/reset":
            history = []
            continue
        if not line:
            continue
        history.append({"role": "user", "content": line})
        click.echo("twin> ", nl=False)
        out = session.chat(
            history,
            contact,
            stream=lambda text: click.echo(text, nl=False),
            temperature=temperature,
            max_tokens=max_tokens,
        )
        click.echo()
        history.append({"role": "assistant", "content": out.texts[0]})


@click.command()
@workspace_option
@click.argument("conversation", type=click.File("r", encoding="utf-8"))
@click.option("-n", type=int, default=3, show_default=True, help="How many drafts.")
@click.option("--temperature", "-t", type=float, help="Sampling temperature; 0 is greedy.")
@click.option("--max-tokens", type=int, help="Most new tokens per draft.")
@click.option(
    "--platform",
    default="whatsapp",
    show_default=True,
    help="Where the chat happens (whatsapp, telegram, email, ...), as named in training.",
)
@click.option("--conversation", "title", default="a chat", help="The chat's name, as in training.")
@model_option
@click.option("--json", "as_json", is_flag=True, help="Print the drafts as a JSON list.")
def reply(
    ws: Workspace,
    conversation: IO[str],
    n: int,
    temperature: float | None,
    max_tokens: int | None,
    platform: str,
    title: str,
    run_id: str | None,
    base_only: bool,
    engine: str | None,
    no_memory: bool,
    show_prompt: bool,
    as_json: bool,
) -> None:
    """Draft N replies, as you, to a pasted conversation (FILE, or - for standard input).

    Each line is `Name: message`; your own lines use one of your `me` names from twin.yaml.

    \b
    Examples:
      selftune reply chat.txt -n 5
      pbpaste | selftune reply - --json
      printf 'Tobias: are you coming sunday?\\n' | selftune reply - --show-prompt
    """
    from selftune.guards import looks_like_injection

    turns = parse_conversation(conversation.read())
    if not turns:
        raise click.UsageError("the conversation is empty; give lines like 'Tobias: hello'")
    if looks_like_injection([t for _, t in turns]):
        say("Warning: the conversation contains text shaped like a prompt injection.")
    session = open_session(ws, run_id, base_only, engine, no_memory, show_prompt)
    out = session.reply(turns, platform, title, n, temperature=temperature, max_tokens=max_tokens)
    if as_json:
        click.echo(json.dumps(out.texts, ensure_ascii=False))
        return
    for i, draft in enumerate(out.texts, start=1):
        click.echo(f"[{i}] {draft}\n")


COMMANDS = [sample, chat, reply]
