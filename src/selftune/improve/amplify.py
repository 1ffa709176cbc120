"""`run_amplify`: N candidates from the current twin for each prompt, stored as samples that wait
for the owner's review (`selftune review`, `pick`, `rate`, the web page's Review tab).

Candidates pass the output guard like everything the twin writes; a sample where the guard
redacted something is flagged `redacted`, and distill never trains on such text. With a trained
ranker the candidates are stored best-first.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from selftune.errors import SelftuneError
from selftune.improve.prompts import Prompt, file_prompts, training_prompts
from selftune.twin import Twin
from selftune.use import TwinSession
from selftune.workspace import Workspace

BATCH_PROMPTS = 4  # prompts generated together (all their candidates are rows of one batch)


def render_prompt(tokenizer: Any, prompt: Prompt) -> str:
    """The text the model continues: the chat rendered with the training template, or the text."""
    from selftune.engines.base import render_chat

    if prompt.kind == "chat":
        return render_chat(tokenizer, prompt.messages or [])
    return prompt.text or ""


def amplify_prompts(ws: Workspace, prompts_file: Path | None, limit: int | None) -> list[Prompt]:
    """The prompts of `prompts_file`, or (none given) from the current twin's training split."""
    twin = Twin.from_config(ws.config)
    if prompts_file is not None:
        prompts = file_prompts(Path(prompts_file), twin)
        return prompts[:limit] if limit else prompts
    run = ws.artefacts.run()
    train = ws.artefacts.dataset_of(run).read_split("train")
    prompts = training_prompts(train, limit or ws.config.improve.prompts, ws.config.improve.seed)
    if not prompts:
        raise SelftuneError(
            "the training split has no prompts to amplify (no replies of yours to messages, no "
            "notes); give some with --prompts FILE"
        )
    return prompts


def generate_candidates(
    session: TwinSession,
    prompts: list[Prompt],
    n: int,
    max_tokens: int,
    temperature: float,
    seed: int | None = None,
    progress: Callable[[int, int], Any] | None = None,
) -> list[tuple[list[str], list[str]]]:
    """(guarded candidates, flags) for each prompt, `BATCH_PROMPTS` prompts per batched call."""
    from selftune.engines.base import GenRequest

    out: list[tuple[list[str], list[str]]] = []
    for start in range(0, len(prompts), BATCH_PROMPTS):
        chunk = prompts[start : start + BATCH_PROMPTS]
        requests = [
            GenRequest(
                render_prompt(session.engine.tokenizer, p),
                n,
                temperature,
                0.95,
                max_tokens,
                seed=None if seed is None else seed + start,
            )
            for p in chunk
        ]
        for request, result in zip(requests, session.generate(requests), strict=True):
            # the prompt is the guard's context: a fact split across prompt and reply is caught
            out.append(session.clean([t.strip("\n") for t in result.texts], request.prompt))
        if progress is not None:
            progress(len(out), len(prompts))
    return out


def run_amplify(
    ws: Workspace,
    prompts_file: Path | None = None,
    n: int | None = None,
    max_tokens: int | None = None,
    limit: int | None = None,
    run_id: str | None = None,
    rank: bool = True,
    engine: Any = None,
    seed: int | None = None,
    progress: Callable[[int, int], Any] | None = None,
) -> list[dict[str, Any]]:
    """Amplify and store; returns [{"sample_id", "prompt", "candidates", "kind"}] in prompt order.
    `engine` may be given (tests, benchmarks); by default the twin (or `run_id`) is loaded."""
    settings = ws.config.improve
    if not ws.config.serve.log_samples:
        raise SelftuneError(
            "amplify stores its candidates for review, but sample logging is off "
            "(serve.log_samples: false in twin.yaml); switch it on first"
        )
    prompts = amplify_prompts(ws, prompts_file, limit)
    session = TwinSession.open(ws, run_id, engine, memory=False, rank=rank)
    n = n or settings.n
    results = generate_candidates(
        session,
        prompts,
        n,
        max_tokens or settings.max_tokens,
        settings.temperature,
        settings.seed if seed is None else seed,
        progress,
    )
    out = []
    for prompt, (candidates, flags) in zip(prompts, results, strict=True):
        candidates, ranked = session.order(candidates)
        params = {
            "n": n,
            "temperature": settings.temperature,
            "max_tokens": max_tokens or settings.max_tokens,
            "kind": prompt.kind,
            "chat": prompt.kind == "chat",
            "from": prompt.source,
        }
        sample_id = session.record("amplify", prompt.stored(), params, candidates, flags + ranked)
        out.append(
            {
                "sample_id": sample_id,
                "prompt": prompt.shown(),
                "kind": prompt.kind,
                "candidates": candidates,
                "_prompt": prompt,
            }
        )
    return out
