"""Commands that judge a twin: eval (the report), report (open it again), bench (your own tests)."""

from __future__ import annotations

import json
from pathlib import Path

import click

from selftune.artefacts import ReportDir
from selftune.cli.options import config_option, overrides, workspace_option
from selftune.config import EVAL_SECTIONS, EvalConfig, apply_overrides
from selftune.errors import SelftuneError
from selftune.evaluation import QUICK, run_eval
from selftune.evaluation.evaluate import endpoint
from selftune.twin import Twin
from selftune.workspace import Workspace


def print_summary(report: dict, folder: Path) -> None:
    """The verdict, each section's summary lines, what the budget left out, the page."""
    from selftune.evaluation.sections import SECTIONS

    click.echo("\n" + report["verdict"] + "\n")
    for section in SECTIONS:
        for line in section.summary(report):
            click.echo(line)
    budget = report.get("budget", {})
    for line in budget.get("left_out", []):
        click.echo(f"Left out for the {budget['minutes']:g}-minute budget: {line}")
    click.echo(f"Report: {folder / 'report.html'}")


JUDGE_URL_HELP = (
    "The judge endpoint (for --judge endpoint). Needed, as your confirmation, when "
    "eval.judge_endpoint in twin.yaml is not on this machine."
)


@click.command("eval")
@workspace_option
@click.option("--run", "run_id", metavar="ID", help="Run id (default: the latest).")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@click.option(
    "--sections",
    metavar="LIST",
    help=f"Comma-separated sections (default: all): {', '.join(EVAL_SECTIONS)}.",
)
@click.option("--quick", is_flag=True, help="Small sample sizes: a first look in about a minute.")
@config_option(EvalConfig, "contexts")
@config_option(EvalConfig, "candidates")
@config_option(EvalConfig, "minutes")
@config_option(EvalConfig, "judge")
@click.option("--open", "open_it", is_flag=True, help="Open report.html in a browser when done.")
@click.option("--judge-endpoint", "judge_url", metavar="URL", help=JUDGE_URL_HELP)
def eval_command(
    ws: Workspace,
    run_id: str | None,
    judge_url: str | None,
    as_json: bool,
    sections: str | None,
    quick: bool,
    open_it: bool,
    **options: object,
) -> None:
    """Is it me? Does it leak? Compare the tuned model with its base on your held-out messages.

    Perplexity of your own words (per source and kind of chat), style and authorship of replies
    generated for held-out messages and of continuations of your held-out notes, a judge's view
    of context fit, and leak tests: planted canaries, verbatim copies of training text, personal
    information. Writes reports/<id>/report.html, report.json and blind_pairs.jsonl. Sample sizes
    come from `eval:` in twin.yaml, cut to fit --minutes (3 on a CPU by default); the report
    says what was left out.

    \b
    Examples:
      selftune eval
      selftune eval --quick --open
      selftune eval --minutes 10
      selftune eval --sections perplexity,canaries --json | jq .leaks
      selftune eval --judge endpoint   # eval.judge_endpoint of twin.yaml, if on this machine
      selftune eval --judge endpoint --judge-endpoint https://llm.example.org/v1
    """
    if quick:
        apply_overrides(ws.config.eval, QUICK)
    apply_overrides(ws.config.eval, overrides(options))
    chosen = [s.strip() for s in sections.split(",")] if sections else None
    echo = (lambda m: click.echo(m, err=True)) if as_json else click.echo
    report, folder = run_eval(ws, run_id, sections=chosen, progress=echo, judge_url=judge_url)
    if as_json:
        click.echo(json.dumps(report, indent=2))
    else:
        print_summary(report, folder)
    if open_it:
        click.launch(str(folder / "report.html"))


@click.command()
@workspace_option
@click.argument("report_id", required=False)
@click.option("--open", "open_it", is_flag=True, help="Open the page in a browser.")
@click.option("--json", "as_json", is_flag=True, help="Print report.json.")
def report(ws: Workspace, report_id: str | None, open_it: bool, as_json: bool) -> None:
    """Show the latest (or a given) evaluation report; rewrites its page with any new
    blind-test results.

    \b
    Examples:
      selftune report --open
      selftune report 20261123-101500 --json
    """
    from selftune.evaluation.html import refresh_report

    found = ws.artefacts.report(report_id)
    data = refresh_report(found.path)
    if as_json:
        click.echo(json.dumps(data, indent=2))
    else:
        click.echo(data.get("verdict", ""))
        click.echo(f"Report: {found.html_path}")
    if open_it:
        click.launch(str(found.html_path))


@click.command()
@workspace_option
@click.argument("bench_file", type=click.Path(dir_okay=False, path_type=Path), default="bench.yaml")
@click.option(
    "--model",
    default="tuned",
    show_default=True,
    metavar="base|tuned|URL",
    help="Which model answers: the run's base, the tuned model, or an OpenAI-compatible URL.",
)
@click.option("--endpoint-model", metavar="NAME", help="Model name to send to a URL --model.")
@click.option("--run", "run_id", metavar="ID", help="Run id (default: the latest).")
@click.option("--seed", type=int, default=0, show_default=True, help="Sampling seed.")
@click.option("--json", "as_json", is_flag=True, help="Print the results as JSON.")
@click.option("--show", is_flag=True, help="Print every candidate reply.")
@click.option("--judge-endpoint", "judge_url", metavar="URL", help=JUDGE_URL_HELP)
def bench(
    ws: Workspace,
    judge_url: str | None,
    bench_file: Path,
    model: str,
    endpoint_model: str | None,
    run_id: str | None,
    seed: int,
    as_json: bool,
    show: bool,
) -> None:
    """Run your own benchmark (prompts with checks, see examples/bench.yaml) and print pass rates.

    Checks: contains, not_contains, regex, not_regex, judged (a yes/no question the judge answers
    about the reply; the judge is eval.judge in twin.yaml). Results are saved beside the report.

    \b
    Examples:
      selftune bench bench.yaml
      selftune bench bench.yaml --model base
      selftune bench bench.yaml --model http://127.0.0.1:8000 --endpoint-model twin
    """
    from selftune.evaluation.bench import load_bench, run_bench

    cases = load_bench(bench_file)
    needs_judge = any(c.judged for case in cases.cases for c in case.checks)
    sides = None
    if model in ("base", "tuned") or (needs_judge and ws.config.eval.judge in ("base", "tuned")):
        from selftune.evaluation.compared_models import load_sides

        sides = dict(zip(("base", "tuned"), load_sides(ws.artefacts.run(run_id).path), strict=True))
    if model in ("base", "tuned"):
        answering = sides[model]
    elif model.startswith(("http://", "https://")):
        answering = endpoint(ws, model, endpoint_model)
    else:
        raise SelftuneError(f"--model {model!r}: use base, tuned, or an http(s):// URL")
    judge = None
    if needs_judge:
        judge = (
            endpoint(ws, judge_url)
            if ws.config.eval.judge == "endpoint"
            else (sides or {}).get(ws.config.eval.judge)
        )
    system = Twin.from_config(ws.config).system()
    results = run_bench(cases, answering, system, judge, seed)
    results |= {"bench": str(bench_file), "model": model}
    staged = ws.artefacts.new_report()
    with staged as folder:
        ReportDir(folder).write_bench(results)
    saved = ReportDir(staged.final).bench_path
    if as_json:
        click.echo(json.dumps(results, indent=2, ensure_ascii=False))
        return
    for row in results["cases"]:
        click.echo(f"{row['pass_rate']:6.0%}  {row['name']}  ({row['passed']}/{row['candidates']})")
        if show:
            for reply in row["replies"]:
                click.echo(f"        · {reply!r}")
    click.echo(
        f"Pass rate {results['pass_rate']:.0%} over {len(results['cases'])} cases ({model}). Saved {saved}"
    )


COMMANDS = [eval_command, report, bench]
