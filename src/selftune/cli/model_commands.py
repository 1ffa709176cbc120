"""`selftune sample` (build: build_commands; train, export: train_commands; eval: eval_commands)."""

from __future__ import annotations

import json
import time

import click

from selftune.cli.build_commands import owner_name, run_build  # noqa: F401 (run_build: callers)
from selftune.cli.options import workspace_option
from selftune.config import apply_overrides
from selftune.workspace import Workspace


@click.command()
@workspace_option
@click.argument("prompt")
@click.option("-n", type=int, help="How many candidates (default from twin.yaml: 4).")
@click.option("--temperature", "-t", type=float, help="Sampling temperature; 0 is greedy.")
@click.option("--top-p", type=float, help="Nucleus sampling threshold.")
@click.option("--max-tokens", type=int, help="Most new tokens per candidate.")
@click.option("--seed", type=int, help="Random seed, for repeatable samples.")
@click.option(
    "--chat", is_flag=True, help="Treat PROMPT as a message sent to you, and reply to it."
)
@click.option("--base-only", is_flag=True, help="Sample from the base model, without the adapter.")
@click.option("--run", "run_id", metavar="ID", help="Run id (default: the latest).")
@click.option("--json", "as_json", is_flag=True, help="Print the candidates as a JSON list.")
def sample(
    ws: Workspace,
    prompt: str,
    chat: bool,
    base_only: bool,
    run_id: str | None,
    as_json: bool,
    seed: int | None,
    **overrides: object,
) -> None:
    """Print N candidates for PROMPT from the tuned model, numbered, so you can pick.

    By default PROMPT is text to continue, like a note you started; with --chat it is a
    message someone sent you, and the candidates are your replies.

    \b
    Examples:
      selftune sample "Here is a list of ideas for my next tattoo: 1." -n 8
      selftune sample "are you coming sunday?" --chat -n 3 --seed 1
      selftune sample "Dear diary," --base-only --json
    """
    from selftune.generate import chat_prompt
    from selftune.generate import sample as generate
    from selftune.models import load_model, load_tokenizer, load_tuned

    apply_overrides(ws.config.sample, overrides)
    settings = ws.config.sample
    if base_only:
        model, tokenizer = load_model(ws.config.train.base), load_tokenizer(ws.config.train.base)
    else:
        model, tokenizer = load_tuned(ws.resolve("runs", run_id))
    text = prompt
    if chat:
        owner = owner_name(ws)
        system = ws.config.build.system_prompt.format(
            owner=owner, platform="WhatsApp", conversation="a chat"
        )
        text = chat_prompt(tokenizer, system, prompt)
    started = time.monotonic()
    candidates = generate(
        model,
        tokenizer,
        text,
        settings.n,
        settings.temperature,
        settings.top_p,
        settings.max_tokens,
        seed,
    )
    if as_json:
        click.echo(json.dumps(candidates, ensure_ascii=False))
        return
    for i, candidate in enumerate(candidates, start=1):
        shown = candidate if chat else prompt + candidate
        click.echo(f"[{i}] {shown}\n")
    click.echo(f"({len(candidates)} candidates in {time.monotonic() - started:.1f}s)", err=True)


COMMANDS = [sample]
