"""The twin's own routes: `/generate` (a prompt → N candidates), `/v1/reply` (draft the owner's
reply to a conversation), picking and rating samples, and the blind "which one is real?" game.
Prompts, memory, guard, ranking and logging come from the twin's session (`state.session`); the
model's scheduler runs the generation."""

from __future__ import annotations

import random
import time
from typing import Annotated, Any

from fastapi import APIRouter, Request
from fastapi import Path as PathParam

from selftune.artefacts import Artefacts
from selftune.server import dispatch
from selftune.server.deps import Authorized, State, is_owner
from selftune.server.errors import APIError
from selftune.server.routes.improve import ranked
from selftune.server.schemas import (
    BlindAnswer,
    BlindPair,
    GenerateRequest,
    GenerateResponse,
    PickRequest,
    RateRequest,
    ReplyRequest,
)
from selftune.server.state import ServerState

router = APIRouter(dependencies=[Authorized])
SampleId = Annotated[int, PathParam(ge=1, le=2**63 - 1, description="A sample id from a reply.")]


@router.get("/api/info")
def info(state: State) -> dict[str, Any]:
    return {
        "owner": state.owner,
        "models": state.model_names(),
        "log_samples": state.log.enabled,
        "max_n": state.serve.max_n,
    }


@router.post("/generate")
async def generate(body: GenerateRequest, request: Request, state: State) -> GenerateResponse:
    flags = dispatch.input_flags(state, [body.prompt], request, body.unattended)
    prompt, shown = body.prompt, body.prompt
    if body.chat:
        asked = [{"role": "user", "content": body.prompt}]
        if body.system:
            asked = [{"role": "system", "content": body.system}, *asked]
        tokenizer = state.tokenizer(body.model)
        shown = state.session.chat_messages(asked, tokenizer=tokenizer, owner=is_owner(request))
        prompt = state.session.render(shown, tokenizer)  # shown: logged as a chat, so distill
        # trains a pick as the reply it is
    return await _candidates(state, request, body, prompt, shown, "generate", flags)


@router.post("/v1/reply")
async def reply(body: ReplyRequest, request: Request, state: State) -> GenerateResponse:
    turns = [(t.author, t.text) for t in body.messages]
    # every turn is checked, the owner's too: an author name is only a claim, and none of these
    # turns was written by the owner here and now
    checked = [part for author, text in turns for part in (author, text)]
    flags = dispatch.input_flags(state, checked, request, body.unattended)
    tokenizer = state.tokenizer(body.model)
    prompt = state.session.reply_prompt(turns, body.platform, body.conversation, tokenizer)
    shown = [{"author": a, "text": t} for a, t in turns]
    return await _candidates(state, request, body, prompt, shown, "reply", flags)


@router.post("/api/samples/{sample_id}/pick")
def pick(sample_id: SampleId, body: PickRequest, state: State) -> dict[str, Any]:
    state.log.pick(sample_id, body.candidate, body.edited)
    return {"ok": True, "sample": sample_id, "picked": body.candidate}


@router.post("/api/samples/{sample_id}/rate")
def rate(sample_id: SampleId, body: RateRequest, state: State) -> dict[str, Any]:
    state.log.rate(sample_id, body.candidate, body.rating)
    return {"ok": True, "sample": sample_id, "candidate": body.candidate, "rating": body.rating}


@router.get("/api/blind")
def blind_pair(state: State) -> dict[str, Any]:
    """A random pair from the newest evaluation's blind pairs, in random order."""
    found = _blind_pairs(state)
    if found is None:
        return {
            "available": False,
            "message": "No blind pairs yet: run `selftune eval` to make reports/<id>/blind_pairs.jsonl.",
        }
    report, pairs = found
    index = random.randrange(len(pairs))
    pair = pairs[index]
    options = [pair["real"], pair["generated"]]
    random.shuffle(options)
    options = [state.guard(o) for o in options]
    context = [_guarded(state, m) for m in pair.get("context", [])]
    card = BlindPair(report=report, pair=index, context=context, options=options)
    return {"available": True, **card.model_dump()}


@router.post("/api/blind/answer")
def blind_answer(body: BlindAnswer, state: State) -> dict[str, Any]:
    if len(body.options) != 2:
        raise APIError(400, "options must be the two options GET /api/blind gave", None, "options")
    found = _blind_pairs(state, body.report)
    if found is None or not 0 <= body.pair < len(found[1]):
        raise APIError(404, f"no blind pair {body.pair} in report {body.report}")
    pair = found[1][body.pair]
    correct = body.options[body.choice] == state.guard(pair["real"])
    score = state.log.blind_answer(body.report, body.pair, correct)
    return {"correct": correct, "real": state.guard(pair["real"]), "score": score}


def _guarded(state: ServerState, message: Any) -> Any:
    if isinstance(message, dict) and isinstance(message.get("content"), str):
        return {**message, "content": state.guard(message["content"])}
    return state.guard(message) if isinstance(message, str) else message


async def _candidates(
    state: ServerState, request: Request, body: Any, prompt: str, shown: Any, endpoint: str, flags
) -> GenerateResponse:
    gen = dispatch.gen_request(state, body, prompt)
    started = time.monotonic()
    result = await dispatch.run(state, request, body.model, gen)
    transform = dispatch.output_transform(state, body)
    texts = [transform(t) for t in result.texts]
    texts, result.finish_reasons = ranked(state, body, texts, result.finish_reasons)
    sample_id = dispatch.log_sample(state, endpoint, body.model, shown, gen, texts, flags)
    return GenerateResponse(
        id=sample_id,
        model=body.model,
        prompt=body.prompt if isinstance(getattr(body, "prompt", None), str) else "",
        candidates=texts,
        finish_reasons=result.finish_reasons,
        usage=dispatch.usage(result),
        flags=flags,
        seconds=round(time.monotonic() - started, 3),
    )


def _blind_pairs(state: ServerState, report: str | None = None):  # type: ignore[no-untyped-def]
    if state.reports_dir is None or not state.reports_dir.exists():
        return None
    found = Artefacts(state.reports_dir.parent).blind_pairs(report)
    return (found[0].id, found[1]) if found else None
