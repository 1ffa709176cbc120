"""Commands of the improve loop: `amplify`, `pick`, `rate`, `review`, `distill`, `rank`.

They parse and print; the work is in `selftune.improve` and the sample log (`selftune.store.samples`).
Candidates are numbered from 1 here, as `sample` and `review` show them.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from selftune.cli.options import config_option, overrides, resume_option, workspace_option
from selftune.config import ImproveConfig
from selftune.errors import SelftuneError
from selftune.workspace import Workspace

IC = ImproveConfig


def _log(ws: Workspace):  # type: ignore[no-untyped-def]
    from selftune.store.samples import SampleLog

    if not ws.config.serve.log_samples:
        raise SelftuneError("sample logging is off (serve.log_samples: false in twin.yaml)")
    return SampleLog(ws.store_path)


def _index(log: Any, sample_id: int, number: int) -> int:
    """The 0-based candidate index of the number shown (from 1), checked against the sample."""
    count = len(log.get(sample_id)["candidates"])
    if not 1 <= number <= count:
        raise SelftuneError(
            f"sample {sample_id} has no candidate {number}; its candidates are numbered 1 to {count}"
        )
    return number - 1


@click.command()
@workspace_option
@click.option(
    "--prompts",
    "prompts_file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help='Text file (a prompt per line) or JSONL of {"prompt": ...} / {"messages": [...]}; '
    "default: your own material from the training split.",
)
@config_option(IC, "n", "-n")
@config_option(IC, "max_tokens")
@click.option("--limit", type=int, help="Most prompts to use (default: improve.prompts).")
@click.option("--run", "run_id", metavar="ID", help="Run id (default: the twin, the latest).")
@click.option("--rank/--no-rank", default=True, help="Store candidates best-first by the ranker.")
@click.option("--json", "as_json", is_flag=True, help="Print [{sample_id, prompt, candidates}].")
def amplify(
    ws: Workspace,
    prompts_file: Path | None,
    limit: int | None,
    run_id: str | None,
    rank: bool,
    as_json: bool,
    **options: object,
) -> None:
    """Write N candidates for each prompt and keep them for your review.

    With no --prompts, prompts come from your own material in the training split only: messages
    you were sent, beginnings of your notes, lists you started. Review them with `selftune
    review`, the web page's Review tab, or `selftune pick` / `selftune rate`.

    \b
    Examples:
      selftune amplify -n 4
      selftune amplify --prompts ideas.txt -n 8 --max-tokens 60 --json
    """
    from selftune.improve import run_amplify

    given = overrides(options)
    shown = click.echo if not as_json else (lambda *_a, **_k: None)

    def progress(done: int, total: int) -> None:
        click.echo(f"\r{done}/{total} prompts", nl=False, err=True)

    items = run_amplify(
        ws,
        prompts_file,
        n=given.get("n"),  # type: ignore[arg-type]
        max_tokens=given.get("max_tokens"),  # type: ignore[arg-type]
        limit=limit,
        run_id=run_id,
        rank=rank,
        progress=progress,
    )
    click.echo("", err=True)
    if as_json:
        rows = [{k: v for k, v in item.items() if not k.startswith("_")} for item in items]
        click.echo(json.dumps(rows, ensure_ascii=False))
        return
    for item in items:
        shown(f"sample {item['sample_id']}: {item['prompt'][:80]!r}")
        for i, text in enumerate(item["candidates"], start=1):
            shown(f"  [{i}] {text}")
    shown(f"{len(items)} prompts stored for review. Next: selftune review")


@click.command()
@workspace_option
@click.argument("sample_id", type=int)
@click.argument("candidate", type=int)
@click.option("--edited", metavar="TEXT", help="Keep your edited version of the candidate.")
def pick(ws: Workspace, sample_id: int, candidate: int, edited: str | None) -> None:
    """Keep CANDIDATE (numbered from 1) of SAMPLE_ID, optionally as you edited it.

    Prints the kept text with the configured tag prefix (serve.tag_prefix), ready to paste
    into your notes. Nothing is written when the sample or candidate does not exist.

    \b
    Examples:
      selftune pick 12 3
      selftune pick 12 3 --edited "righto — sunday it is x"
    """
    from selftune.picks import with_tag

    log = _log(ws)
    index = _index(log, sample_id, candidate)
    log.pick(sample_id, index, edited)
    text = edited if edited is not None else log.get(sample_id)["candidates"][index]
    click.echo(
        f"Kept candidate {candidate} of sample {sample_id}" + (" (edited)." if edited else "."),
        err=True,
    )
    click.echo(with_tag(text, ws.config))


@click.command(context_settings={"ignore_unknown_options": True})
@workspace_option
@click.argument("sample_id", type=int)
@click.argument("candidate", type=int)
@click.argument("rating", type=click.Choice(["+1", "1", "-1"]))
def rate(ws: Workspace, sample_id: int, candidate: int, rating: str) -> None:
    """Give CANDIDATE (numbered from 1) of SAMPLE_ID a thumbs up (+1) or down (-1).

    \b
    Examples:
      selftune rate 12 2 +1
      selftune rate 12 4 -1
    """
    log = _log(ws)
    index = _index(log, sample_id, candidate)
    value = -1 if rating == "-1" else 1
    log.rate(sample_id, index, value)
    click.echo(f"Rated candidate {candidate} of sample {sample_id}: {rating}.")


REVIEW_HELP = "1-9 keep · e edit then keep · r reject all · s skip · q quit"


def _show_sample(sample: dict[str, Any], twin: Any) -> None:
    from selftune.picks import stored_prompt

    prompt = stored_prompt(sample, twin)
    click.echo(click.style(f"\nsample {sample['id']}", bold=True))
    if prompt is not None and prompt.kind == "chat":
        for m in (prompt.messages or [])[-4:]:
            if m["role"] != "system":
                who = "you" if m["role"] == "assistant" else "them"
                click.echo(f"  {who}: {m['content']}")
    elif prompt is not None:
        click.echo(f"  {prompt.text}")
    for i, text in enumerate(sample["candidates"], start=1):
        click.echo(f"  [{i}] {text}")


@click.command()
@workspace_option
@click.option("--limit", type=int, help="Review at most this many samples.")
def review(ws: Workspace, limit: int | None) -> None:
    """Review what waits, in the terminal, with the keyboard only.

    For each sample the conversation (or note) and its candidates are shown; press a number to
    keep that candidate, `e` to edit one and keep your version, `r` when none sounds like you
    (each gets a thumbs down), `s` to skip, `q` to stop.

    \b
    Example:
      selftune amplify -n 4 && selftune review
    """
    from selftune.picks import with_tag
    from selftune.twin import Twin

    log = _log(ws)
    twin = Twin.from_config(ws.config)
    waiting = log.waiting(limit)
    if not waiting:
        click.echo("Nothing waits for review. Make some with `selftune amplify`.")
        return
    click.echo(f"{len(waiting)} sample(s) wait. {REVIEW_HELP}")
    done = 0
    for sample in waiting:
        _show_sample(sample, twin)
        count = len(sample["candidates"])
        while True:
            key = click.getchar()
            if key in ("q", "\x03", "\x04"):
                click.echo(f"\nReviewed {done}; {log.review_counts()['waiting']} still wait.")
                return
            if key == "s":
                click.echo("  skipped")
                break
            if key == "r":
                log.reject_all(sample["id"])
                click.echo("  rejected all")
                done += 1
                break
            if key.isdigit() and 1 <= int(key) <= count:
                log.pick(sample["id"], int(key) - 1)
                click.echo(
                    f"  kept [{key}]: {with_tag(sample['candidates'][int(key) - 1], ws.config)}"
                )
                done += 1
                break
            if key == "e":
                number = click.prompt("  edit which", type=click.IntRange(1, count))
                text = click.prompt("  your version", default=sample["candidates"][number - 1])
                log.pick(sample["id"], number - 1, text)
                click.echo(f"  kept your edit of [{number}]: {with_tag(text, ws.config)}")
                done += 1
                break
            click.echo(f"  ({REVIEW_HELP})")
    counts = log.review_counts()
    click.echo(
        f"\nReviewed {done}. Collected: {counts['picked']} picked ({counts['edited']} edited), "
        f"{counts['rated']} rated. Next: selftune distill"
    )


@click.command()
@workspace_option
@config_option(IC, "method")
@config_option(IC, "minutes")
@config_option(IC, "epochs")
@config_option(IC, "learning_rate", "--lr")
@config_option(IC, "beta")
@config_option(IC, "replay")
@click.option("--run", "parent_id", metavar="ID", help="Distill from this run (default: the twin).")
@resume_option("distill")
def distill(ws: Workspace, parent_id: str | None, resume_id: str | None, **options: object) -> None:
    """Train a new run from the current twin on what you kept, always with a replay of your
    original data; the new run becomes `twin`.

    Kept and edited candidates are SFT targets; with enough chosen-vs-rejected pairs DPO, or
    thumbs KTO, follows (TRL's trainers). --method auto picks what your picks support and says
    why. The most recent picks are held out for `selftune eval`. The ranker is retrained too.

    \b
    Examples:
      selftune distill
      selftune distill --method sft --minutes 5
      selftune distill --resume
    """
    from selftune.improve import run_distill, train_ranker

    given = overrides(options)
    method = given.pop("method", None)
    minutes = given.pop("minutes", None)
    summary, run_dir = run_distill(
        ws,
        method=method,  # type: ignore[arg-type]
        minutes=minutes,  # type: ignore[arg-type]
        parent_id=parent_id,
        resume_id=resume_id,
        overrides=given,
        echo=click.echo,
    )
    d = summary["distill"]
    c = d["counts"]
    click.echo(
        f"Done: {run_dir.name} from {summary['parent']} by {d['method']} on {c['kept']} kept, "
        f"{c['pairs']} pairs, {c['thumbs_up']}+/{c['thumbs_down']}- thumbs, {d['replayed']} "
        f"replayed; {len(d['held_out_samples'])} held out. It is the twin now."
    )
    try:
        ranker = train_ranker(ws)
        click.echo(f"Ranker retrained (held-out accuracy {ranker.info['held_out_accuracy']}).")
    except SelftuneError as exc:
        click.echo(f"Ranker not retrained: {exc}")
    click.echo("Next: selftune eval (its picks section compares the new twin with its parent)")


@click.command()
@workspace_option
@click.option("--train", "do_train", is_flag=True, help="Fit the ranker on your picks now.")
def rank(ws: Workspace, do_train: bool) -> None:
    """The preference ranker: what you keep vs reject, learned from your picks.

    Once trained, `sample` and `amplify` show candidates best-first, and `serve` does with
    `rank: true` (twin.yaml serve.rank, or a request's `rank` field).

    \b
    Examples:
      selftune rank --train
      selftune rank
    """
    from selftune.improve import train_ranker
    from selftune.use import load_ranker

    ranker = train_ranker(ws) if do_train else load_ranker(ws.root)
    if ranker is None:
        click.echo("No ranker yet: review some samples, then `selftune rank --train`.")
        return
    info = ranker.info
    t = info.get("trained_on", {})
    click.echo(f"Ranker: {info.get('model')}")
    click.echo(
        f"  trained {info.get('trained')} on {t.get('kept')} kept, {t.get('rejected')} rejected"
    )
    click.echo(
        f"  held-out pairs: {info.get('held_out_pairs')}, accuracy {info.get('held_out_accuracy')} "
        f"(authorship alone {info.get('authorship_alone_accuracy')})"
    )


COMMANDS = [amplify, pick, rate, review, distill, rank]
