"""Commands for the model stages: eval, sample (build: build_commands; train, export: train_commands)."""

from __future__ import annotations

import json
import time

import click

from selftune.cli.build_commands import owner_name, run_build  # noqa: F401 (run_build: callers)
from selftune.cli.options import workspace_option
from selftune.config import apply_overrides
from selftune.workspace import Workspace


@click.command("eval")
@workspace_option
@click.option("--run", "run_id", metavar="ID", help="Run id (default: the latest).")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
def eval_command(ws: Workspace, run_id: str | None, as_json: bool) -> None:
    """Compare the base and the tuned model on the held-out split; writes reports/<id>/report.json.

    \b
    Examples:
      selftune eval
      selftune eval --json | jq .perplexity
    """
    from selftune.evaluate import evaluate_run

    run_dir = ws.resolve("runs", run_id)
    info = json.loads((run_dir / "run.json").read_text()) if (run_dir / "run.json").exists() else {}
    dataset_dir = ws.resolve("datasets", info.get("dataset"))
    report = evaluate_run(run_dir, dataset_dir, ws.config.train.max_seq_len)
    folder = ws.new_artefact_dir("reports")
    report["id"] = folder.name
    (folder / "report.json").write_text(json.dumps(report, indent=2) + "\n")
    if as_json:
        click.echo(json.dumps(report, indent=2))
        return
    ppl = report["perplexity"]
    click.echo(
        f"Held-out perplexity ({report['scored_tokens']} of your tokens): base {ppl['base']:.2f} → tuned {ppl['tuned']:.2f}"
    )
    for source, row in report["perplexity_by_source"].items():
        click.echo(
            f"  {source:18} base {row['base']:.2f} → tuned {row['tuned']:.2f}  ({row['tokens']} tokens)"
        )
    click.echo(f"Report: {folder / 'report.json'}")


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


COMMANDS = [eval_command, sample]
