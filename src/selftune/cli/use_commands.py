"""Commands that put the twin to work: sample, chat, reply and serve.

All four run the same engines as the server (`selftune.engines`), pass output through the same
guard, and keep what was generated in store.sqlite unless `serve.log_samples` is off.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import click

from selftune.cli.options import config_option, workspace_option
from selftune.config import SampleConfig, apply_overrides
from selftune.errors import SelftuneError
from selftune.twin import Twin
from selftune.workspace import Workspace

ENGINE_CHOICE = click.Choice(["auto", "transformers", "llamacpp", "openai"])


def the_twin(ws: Workspace) -> Twin:
    return Twin.from_config(ws.config)


def model_option(fn):  # type: ignore[no-untyped-def]
    fn = click.option(
        "--engine",
        type=ENGINE_CHOICE,
        help="auto (llama.cpp unless it cannot run), transformers, llamacpp, openai (serve.upstream).",
    )(fn)
    fn = click.option("--base-only", is_flag=True, help="Use the base model, without the adapter.")(
        fn
    )
    return click.option("--run", "run_id", metavar="ID", help="Run id (default: the latest).")(fn)


def open_cli_engine(ws: Workspace, run_id: str | None, base_only: bool, engine: str | None) -> Any:
    from selftune.engines import ModelSpec, open_engine

    base = ws.config.train.base
    if base_only:
        spec = ModelSpec("base", base)
    else:
        run = ws.artefacts.run(run_id)
        spec = ModelSpec(run.id, run.base, run.path)
    echo = lambda line: click.echo(line, err=True)  # noqa: E731
    eng = open_engine(spec, engine or ws.config.serve.engine, serve=ws.config.serve, echo=echo)
    click.echo(f"{spec.name} on {eng.choice.describe()}", err=True)
    return eng


def sample_log(ws: Workspace):  # type: ignore[no-untyped-def]
    from selftune.store.samples import SampleLog

    return SampleLog(ws.store_path if ws.config.serve.log_samples else None)


def guard(ws: Workspace):  # type: ignore[no-untyped-def]
    from selftune.guards import OutputGuard
    from selftune.memory.facts import private_facts

    return OutputGuard(private_facts(ws), enabled=ws.config.serve.guard_output)


def memory(ws: Workspace, no_memory: bool = False):  # type: ignore[no-untyped-def]
    """The twin's memory (facts, past chats), or None when switched off."""
    from selftune.memory import Memory

    if no_memory or not ws.config.memory.enabled:
        return None
    return Memory.from_workspace(ws)


def memory_option(fn):  # type: ignore[no-untyped-def]
    return click.option(
        "--no-memory", is_flag=True, help="Leave the memory block (facts, past chats) out."
    )(fn)


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
@memory_option
@click.option("--json", "as_json", is_flag=True, help="Print the candidates as a JSON list.")
def sample(
    ws: Workspace,
    prompt: str,
    chat: bool,
    no_memory: bool,
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
      selftune sample "Dear diary," --base-only --json
    """
    from selftune.engines import GenRequest, render_chat
    from selftune.improve.ranker import load_ranker

    apply_overrides(ws.config.sample, overrides)
    settings = ws.config.sample
    eng = open_cli_engine(ws, run_id, base_only, engine)
    text = prompt
    if chat:
        from selftune.memory import token_counter

        mem = memory(ws, no_memory)
        asked = [{"role": "user", "content": prompt}]
        count = token_counter(eng.tokenizer)
        block = mem.for_messages(asked, count_tokens=count, owner=True) if mem else None
        messages = [{"role": "system", "content": the_twin(ws).system(memory=block)}, *asked]
        text = render_chat(eng.tokenizer, messages)
    started = time.monotonic()
    request = GenRequest(
        text,
        settings.n,
        settings.temperature,
        settings.top_p,
        settings.max_tokens,
        list(stop),
        seed,
    )
    result = eng.generate([request])[0]
    clean = guard(ws)
    candidates = [clean(t, prompt).strip("\n") for t in result.texts]
    ranker = load_ranker(ws.root) if rank else None
    if ranker is not None:
        candidates = ranker.order(candidates)
    params = {"n": settings.n, "chat": chat}  # `chat`: rebuild the prompt as a reply (distill)
    sample_log(ws).add("cli-sample", eng.model_id, prompt, params, candidates)
    if as_json:
        click.echo(json.dumps(candidates, ensure_ascii=False))
        return
    for i, candidate in enumerate(candidates, start=1):
        shown = candidate if chat else prompt + candidate
        click.echo(f"[{i}] {shown}\n")
    click.echo(
        f"({len(candidates)} candidates in {time.monotonic() - started:.1f}s, {eng.name})", err=True
    )


@click.command()
@workspace_option
@model_option
@click.option("--temperature", "-t", type=float, help="Sampling temperature; 0 is greedy.")
@click.option("--max-tokens", type=int, help="Most new tokens per reply.")
@memory_option
@click.option("--as", "contact", metavar="NAME", help="Who is chatting (memory prefers them).")
def chat(
    ws: Workspace,
    run_id: str | None,
    base_only: bool,
    engine: str | None,
    temperature: float | None,
    max_tokens: int | None,
    no_memory: bool,
    contact: str | None,
) -> None:
    """Chat with your twin in the terminal; it remembers the conversation until you /reset.

    Type a message and press Enter; the reply streams as it is written. /reset starts over,
    /quit (or Ctrl-D) leaves.

    \b
    Examples:
      selftune chat
      selftune chat --base-only -t 0.5
    """
    from selftune.engines import GenRequest, render_chat
    from selftune.guards import GuardedStream
    from selftune.memory import token_counter

    eng = open_cli_engine(ws, run_id, base_only, engine)
    mem = memory(ws, no_memory)
    count = token_counter(eng.tokenizer)
    settings = ws.config.sample
    clean = guard(ws)
    log = sample_log(ws)
    history: list[dict[str, str]] = [{"role": "system", "content": the_twin(ws).system()}]
    click.echo(
        f"Chatting with {the_twin(ws).owner}'s twin ({eng.model_id}, {eng.name}). /quit to leave."
    )
    while True:
        try:
            line = input("you> ").strip()
        except EOFError:
            break
        if line in ("/quit", "/exit"):
            break
        if line == "/reset":
            history = history[:1]
            continue
        if not line:
            continue
        history.append({"role": "user", "content": line})
        if mem is not None:  # the block follows each new message (what it remembers changes)
            block = mem.for_messages(history, contact, count_tokens=count, owner=not contact)
            history[0] = {"role": "system", "content": the_twin(ws).system(memory=block)}
        stream = GuardedStream(clean, context=line)
        click.echo("twin> ", nl=False)

        def show(_: int, text: str, stream: GuardedStream = stream) -> None:
            click.echo(stream.feed(text), nl=False)

        request = GenRequest(
            render_chat(eng.tokenizer, history),
            1,
            settings.temperature if temperature is None else temperature,
            settings.top_p,
            max_tokens or settings.max_tokens,
            on_text=show,
        )
        result = eng.generate([request])[0]
        click.echo(stream.finish())
        reply = clean(result.texts[0], line)
        history.append({"role": "assistant", "content": reply})
        log.add("cli-chat", eng.model_id, history[:-1], {"n": 1}, [reply])


def parse_conversation(text: str) -> list[tuple[str, str]]:
    """`Author: text` lines; a line without `Name:` continues the turn before it."""
    turns: list[tuple[str, str]] = []
    for raw in text.splitlines():
        line = raw.rstrip()
        if not line.strip():
            continue
        author, sep, said = line.partition(":")
        if sep and author.strip() and len(author) <= 40 and "http" not in author:
            turns.append((author.strip(), said.strip()))
        elif turns:
            turns[-1] = (turns[-1][0], turns[-1][1] + "\n" + line.strip())
        else:
            turns.append(("them", line.strip()))
    return turns


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
@memory_option
@click.option("--json", "as_json", is_flag=True, help="Print the drafts as a JSON list.")
def reply(
    ws: Workspace,
    conversation: Any,
    n: int,
    temperature: float | None,
    max_tokens: int | None,
    platform: str,
    title: str,
    run_id: str | None,
    base_only: bool,
    engine: str | None,
    no_memory: bool,
    as_json: bool,
) -> None:
    """Draft N replies, as you, to a pasted conversation (FILE, or - for standard input).

    Each line is `Name: message`; your own lines use one of your `me` names from twin.yaml.

    \b
    Examples:
      selftune reply chat.txt -n 5
      pbpaste | selftune reply - --json
      printf 'Tobias: are you coming sunday?\\n' | selftune reply -
    """
    from selftune.engines import GenRequest, render_chat
    from selftune.guards import looks_like_injection

    turns = parse_conversation(conversation.read())
    if not turns:
        raise click.UsageError("the conversation is empty; give lines like 'Tobias: hello'")
    if looks_like_injection([t for _, t in turns]):
        click.echo(
            "Warning: the conversation contains text shaped like a prompt injection.", err=True
        )
    eng = open_cli_engine(ws, run_id, base_only, engine)
    settings = ws.config.sample
    from selftune.memory import token_counter

    mem = memory(ws, no_memory)
    block = (
        mem.for_turns(turns, platform, title, count_tokens=token_counter(eng.tokenizer))
        if mem
        else None
    )
    messages = the_twin(ws).reply_messages(turns, platform, title, memory=block)
    request = GenRequest(
        render_chat(eng.tokenizer, messages),
        n,
        settings.temperature if temperature is None else temperature,
        settings.top_p,
        max_tokens or settings.max_tokens,
    )
    clean = guard(ws)
    drafts = [clean(t, turns[-1][1]).strip() for t in eng.generate([request])[0].texts]
    shown = [{"author": a, "text": t} for a, t in turns]
    sample_log(ws).add("cli-reply", eng.model_id, shown, {"n": n}, drafts)
    if as_json:
        click.echo(json.dumps(drafts, ensure_ascii=False))
        return
    for i, draft in enumerate(drafts, start=1):
        click.echo(f"[{i}] {draft}\n")


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
    from selftune.improve.ranker import load_ranker
    from selftune.server import ServerState, check_bind, create_app

    apply_overrides(ws.config.serve, {**overrides, "api_key": read_api_key(api_key_file)})
    settings = ws.config.serve
    check_bind(settings.host, settings.api_key)
    log = sample_log(ws)
    if no_log:
        log.path = None
    from selftune.memory.facts import private_facts

    state = ServerState(
        catalog=model_catalog(ws.runs_dir, ws.config.train.base),
        serve=settings,
        # facts.yaml's private facts are guarded like build.private_facts
        build=ws.config.build.model_copy(update={"private_facts": private_facts(ws)}),
        me=ws.config.me,
        log=log,
        reports_dir=ws.reports_dir,
        ranker=load_ranker(ws.root),
        memory=memory(ws),
    )
    state.echo = lambda line: click.echo(line, err=True)
    state.scheduler("twin")  # load the default model before taking requests
    for name in state.model_names():
        choice = state.engine_choice(name)
        when = "loaded" if name in state.engines else "loads on first use"
        click.echo(f"  {name:14} {choice.describe() if choice else '?'} ({when})", err=True)
    click.echo(
        f"Serving {the_twin(ws).owner}'s twin on http://{settings.host}:{settings.port}/ "
        "(API: /v1). Ctrl-C stops.",
        err=True,
    )
    uvicorn.run(create_app(state), host=settings.host, port=settings.port, log_level="warning")
    sys.exit(0)


COMMANDS = [sample, chat, reply, serve]
