"""`run_eval`: the evaluation stage's one entry point (the CLI, the demo, benchmarks and tests
call it): evaluates a finished run against its dataset and writes `reports/<id>/`."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from selftune.errors import SelftuneError
from selftune.workspace import Workspace

# `selftune eval --quick`: small samples, a first look in about a minute
QUICK = {
    "contexts": 8,
    "candidates": 1,
    "canary_candidates": 100,
    "regurgitation_prompts": 4,
    "free_samples": 4,
}


def endpoint(ws: Workspace, url: str | None = None, model: str | None = None) -> Any:
    """The OpenAI-compatible endpoint `url` (the owner typed it), or `eval.judge_endpoint`, as an
    eval side. A URL that only twin.yaml chose is used only on this machine: anywhere else it
    would receive held-out messages and the token of `eval.judge_api_key_env`, so the owner must
    confirm it by giving it on the command line (a twin.yaml can be planted; see workspace)."""
    from urllib.parse import urlsplit

    from selftune.config import is_loopback
    from selftune.evaluation.compared_models import Endpoint

    settings = ws.config.eval
    chosen_here = url is not None
    url = url or settings.judge_endpoint
    if not url:
        raise SelftuneError(
            "no endpoint configured: set eval.judge_endpoint in twin.yaml or pass an http(s) URL"
        )
    host = urlsplit(url).hostname or ""
    if not chosen_here and not is_loopback(host):
        raise SelftuneError(
            f"eval.judge_endpoint in {ws.config_path} would send your held-out messages, and the "
            f"value of ${settings.judge_api_key_env} as a token, to {host or url}. If that is "
            f"yours, confirm it on the command line: --judge-endpoint {url}"
        )
    return Endpoint(
        f"endpoint {model or settings.judge_model}",
        url,
        model or settings.judge_model,
        settings.judge_api_key_env,
    )


def run_eval(
    ws: Workspace,
    run_id: str | None = None,
    sections: list[str] | None = None,
    progress: Callable[[str], Any] | None = None,
    judge_url: str | None = None,
) -> tuple[dict[str, Any], Path]:
    """Evaluate a finished run (the newest by default) with `eval:` of twin.yaml; writes
    report.json, report.html and blind_pairs.jsonl into a new reports/<id>/ and returns
    (report, folder). `judge_url`: the judge endpoint as the owner gave it (confirmed)."""
    from selftune.evaluation.html import write_report
    from selftune.evaluation.report import evaluate_run
    from selftune.memory.facts import private_facts

    settings = ws.config.eval
    chosen = sections or settings.sections
    run = ws.artefacts.run(run_id)
    dataset = ws.artefacts.dataset_of(run)
    use_endpoint = settings.judge == "endpoint" and "judge" in chosen
    judge = endpoint(ws, judge_url) if use_endpoint else None
    report = evaluate_run(
        run.path,
        dataset.path,
        ws.config.train.max_seq_len,
        config=settings,
        sections=chosen,
        private_facts=private_facts(ws),
        judge_endpoint=judge,
        progress=progress,
        ws=ws,
    )
    staged = ws.artefacts.new_report()  # renamed into reports/ once it is written
    report["id"] = staged.id
    with staged as folder:
        write_report(folder, report)
    return report, staged.final
