"""The review routes behind the web page's Review tab: what waits (amplified samples and any
sample of several candidates not yet picked or rated), and keep / edit / rate / reject all.
They write the same tables as `selftune review`, `pick` and `rate`."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from pydantic import BaseModel, Field

from selftune.picks import stored_prompt, untagged
from selftune.server.deps import Authorized, State
from selftune.server.errors import APIError
from selftune.server.state import ServerState

router = APIRouter(dependencies=[Authorized])


class ReviewPick(BaseModel):
    candidate: int = Field(ge=0, description="Index of the kept candidate (from 0).")
    edited: str | None = Field(None, description="Your version of it, when you edited it.")


class ReviewRate(BaseModel):
    candidate: int = Field(ge=0)
    rating: int = Field(description="+1 thumbs up, -1 thumbs down.")


def ranked(
    state: ServerState, body: Any, texts: list[str], reasons: list[str]
) -> tuple[list[str], list[str]]:
    """Candidates (and their finish reasons) best-first when ranking is asked for (the request's
    `rank`, else `serve.rank`) and a ranker is trained; as they are otherwise."""
    wanted = getattr(body, "rank", None)
    wanted = state.serve.rank if wanted is None else wanted
    if not wanted:
        return texts, reasons
    order = state.session.ranking(texts)
    return [texts[i] for i in order], [reasons[i] for i in order]


def _card(state: ServerState, sample: dict[str, Any]) -> dict[str, Any]:
    prompt = stored_prompt(sample, state.twin)
    context: list[dict[str, str]] = []
    if prompt is not None and prompt.kind == "chat":
        context = [
            {"who": "you" if m["role"] == "assistant" else "them", "text": m["content"]}
            for m in (prompt.messages or [])[-4:]
            if m["role"] != "system"
        ]
    tags = [state.serve.tag_prefix] if state.serve.tag_prefix else []
    return {
        "id": sample["id"],
        "kind": prompt.kind if prompt is not None else "text",
        "context": context,
        "text": prompt.text if prompt is not None and prompt.kind == "text" else None,
        "candidates": [untagged(c, tags) for c in sample["candidates"]],
        "flags": sample.get("flags", []),
        "created": sample["created"],
    }


def _logging(state: ServerState) -> None:
    if not state.log.enabled:
        raise APIError(409, "sample logging is off (serve.log_samples: false); nothing to review")


@router.get("/api/review")
def waiting(state: State, limit: int = 20) -> dict[str, Any]:
    """What waits for review (oldest first) and how much has been collected."""
    return {
        "waiting": [_card(state, s) for s in state.log.waiting(max(1, min(limit, 100)))],
        "counts": state.log.review_counts(),
        "tag_prefix": state.serve.tag_prefix,
        "log_samples": state.log.enabled,
    }


@router.post("/api/review/{sample_id}/pick")
def keep(sample_id: int, body: ReviewPick, state: State) -> dict[str, Any]:
    _logging(state)
    state.log.pick(sample_id, body.candidate, body.edited)
    text = (
        body.edited
        if body.edited is not None
        else state.log.get(sample_id)["candidates"][body.candidate]
    )
    tag = state.serve.tag_prefix
    kept = text if not tag or text.startswith(tag) else tag + text
    return {"ok": True, "sample": sample_id, "kept": kept, "counts": state.log.review_counts()}


@router.post("/api/review/{sample_id}/rate")
def rate(sample_id: int, body: ReviewRate, state: State) -> dict[str, Any]:
    _logging(state)
    if body.rating not in (1, -1):
        raise APIError(400, "rating must be +1 or -1", None, "rating")
    state.log.rate(sample_id, body.candidate, body.rating)
    return {"ok": True, "sample": sample_id, "counts": state.log.review_counts()}


@router.post("/api/review/{sample_id}/reject")
def reject_all(sample_id: int, state: State) -> dict[str, Any]:
    """None of the candidates sounds like you: a thumbs down for each."""
    _logging(state)
    state.log.reject_all(sample_id)
    return {"ok": True, "sample": sample_id, "counts": state.log.review_counts()}
