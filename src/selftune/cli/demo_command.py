"""`selftune demo`: every stage on the bundled example person, with timings and the numbers."""

from __future__ import annotations

import json
from pathlib import Path

import click

from selftune.demo import (
    DEMO_PROMPTS,
    EXAMPLE_OWNER,
    Timer,
    example_dir,
    prepare_demo_dir,
    timings_table,
    write_summary,
)


@click.command()
@click.option(
    "--workspace",
    "-w",
    "root",
    type=click.Path(file_okay=False, path_type=Path),
    default="selftune-demo",
    show_default=True,
    help="Where to create the demo workspace (cleared if an earlier demo made it).",
)
@click.option("--minutes", type=float, default=5.0, show_default=True, help="Training time budget.")
@click.option("--max-steps", type=int, help="Stop training after N steps (for a quick look).")
@click.option("-n", type=int, default=3, show_default=True, help="Samples per demo prompt.")
def demo(root: Path, minutes: float, max_steps: int | None, n: int) -> None:
    """Run init → ingest → build → train → eval → sample on a bundled example person.

    Mags (fictional) keeps bees and builds violins; her WhatsApp chats and notes ship with
    selftune. On 2 CPU cores the whole demo takes under 10 minutes and shows the held-out
    perplexity of the base model against the tuned one, then a few samples in her voice.

    \b
    Examples:
      selftune demo
      selftune demo --minutes 2 --workspace /tmp/demo
    """
    from selftune.build import run_build
    from selftune.config import apply_overrides
    from selftune.engines.generate import chat_prompt, sample
    from selftune.evaluation.report import evaluate_run
    from selftune.ingest.runner import ingest_paths
    from selftune.models import ensure_embedded_checkpoint, load_tuned
    from selftune.training.trainer import train
    from selftune.workspace import init_workspace

    timer = Timer(click.echo)
    example = example_dir()
    prepare_demo_dir(root)
    ws = init_workspace(root, [EXAMPLE_OWNER], name="mags")
    with timer.stage("setup"):
        click.echo(f"Base model: SmolLM2-135M-Instruct (embedded) → {ensure_embedded_checkpoint()}")
    with timer.stage("ingest"), ws.open_store() as store:
        for summary in ingest_paths(
            store, [example / "whatsapp", example / "notes"], (EXAMPLE_OWNER,)
        ):
            click.echo(summary.line())
    with timer.stage("build"):
        info, dataset_id = run_build(ws)
        click.echo(
            f"Dataset {dataset_id}: {info['train']['examples']} training examples "
            f"({info['train']['tokens']} tokens), {info['valid']['examples']} held out"
        )
    with timer.stage("train"):
        apply_overrides(ws.config.train, {"minutes": minutes, "max_steps": max_steps})
        run_dir = ws.new_artefact_dir("runs")
        run = train(ws.resolve("datasets", dataset_id), run_dir, ws.config.train)
        click.echo(
            f"{run['steps']} steps in {run['seconds']:.0f}s, {run['tokens_per_second']:.0f} tokens/s ({run['precision']})"
        )
    with timer.stage("eval"):
        report = evaluate_run(
            run_dir, ws.resolve("datasets", dataset_id), ws.config.train.max_seq_len
        )
        report_dir = ws.new_artefact_dir("reports")
        (report_dir / "report.json").write_text(json.dumps(report, indent=2) + "\n")
    samples = []
    with timer.stage("sample"):
        model, tokenizer = load_tuned(run_dir)
        system = ws.config.build.system_prompt.format(
            owner=EXAMPLE_OWNER, platform="Whatsapp", conversation="Juno"
        )
        for mode, prompt in DEMO_PROMPTS:
            text = chat_prompt(tokenizer, system, prompt) if mode == "chat" else prompt
            outs = sample(model, tokenizer, text, n=n, temperature=0.8, max_tokens=48, seed=0)
            samples.append({"mode": mode, "prompt": prompt, "samples": outs})
            click.echo(f"\n{'They say' if mode == 'chat' else 'Continue'}: {prompt!r}")
            for i, out in enumerate(outs, 1):
                click.echo(f"  [{i}] {out!r}")

    ppl = report["perplexity"]
    click.echo("\n== result ==")
    click.echo(
        f"Held-out perplexity on Mags's own words: base {ppl['base']:.2f} → tuned {ppl['tuned']:.2f}"
    )
    click.echo(timings_table(timer.stages))
    write_summary(
        root, {"perplexity": ppl, "timings_s": timer.stages, "train": run, "samples": samples}
    )
    click.echo(
        f'\nWorkspace: {root}  (try: selftune sample --workspace {root} "are you free saturday?" --chat)'
    )


COMMANDS = [demo]
