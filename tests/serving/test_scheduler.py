"""Continuous batching in the llama.cpp engine and the scheduler in front of it: a request that
joins mid-flight gets the same greedy tokens as alone, cancelling frees its slots, seeds repeat
whatever else runs, stop strings and streams stay per sequence, and the queue pushes back."""

from __future__ import annotations

import threading
import time

import pytest

from selftune.engines.base import GenRequest, render_chat
from selftune.engines.llamacpp_batch import fill_prompt
from selftune.engines.llamacpp_engine import LlamaCppEngine
from selftune.server.scheduler import QueueFull, Scheduler


def chat(engine, text: str) -> str:  # type: ignore[no-untyped-def]
    return render_chat(engine.tokenizer, [{"role": "user", "content": text}])


def run_all(engine, events) -> dict[int, object]:  # type: ignore[no-untyped-def]
    """Step the engine to the end, admitting `events[step]` requests at that step."""
    out, step = {}, 0
    while engine.busy() or any(k >= step for k in events):
        for request in events.get(step, []):
            engine.admit(request)
        for request, result in engine.step():
            out[id(request)] = result
        step += 1
    return out


def assert_all_slots_free(engine) -> None:  # type: ignore[no-untyped-def]
    assert sorted(engine.free_ids) == list(range(engine.slots))
    assert engine.reserved == 0 and not engine.running
    for seq in range(engine.slots):
        assert engine.lib.llama_memory_seq_pos_max(engine.memory, seq) == -1


def test_joining_mid_flight_gives_the_same_greedy_tokens_as_alone(llama_engine):
    a = GenRequest(chat(llama_engine, "Give me a tattoo idea."), 2, 0, 1, 24)
    b = GenRequest(chat(llama_engine, "How are the bees doing this week?"), 3, 0, 1, 24)
    alone_a = llama_engine.generate([GenRequest(a.prompt, 1, 0, 1, 24)])[0]
    alone_b = llama_engine.generate([GenRequest(b.prompt, 1, 0, 1, 24)])[0]
    steps_before = llama_engine.steps
    out = run_all(llama_engine, {0: [a], 7: [b]})
    assert out[id(a)].texts == alone_a.texts * 2
    assert out[id(b)].texts == alone_b.texts * 3
    assert out[id(b)].prompt_tokens == alone_b.prompt_tokens
    # b joined a running batch: far fewer steps than running the two one after the other
    assert llama_engine.steps - steps_before < 24 + 24
    assert_all_slots_free(llama_engine)


def test_the_prompt_is_decoded_once_for_all_candidates(llama_engine):
    request = GenRequest(chat(llama_engine, "Name a fruit."), 4, 0.9, 0.95, 3, seed=1)
    llama_engine.admit(request)
    run = llama_engine.running[0]
    try:
        fill_prompt(llama_engine.batch, run, llama_engine.n_batch)  # once each, for all 4
        batch = llama_engine.batch
        assert batch.n_tokens == len(run.prompt) - run.reused
        assert {batch.n_seq_id[i] for i in range(batch.n_tokens)} == {4}
    finally:
        request.cancelled = lambda: True
        llama_engine.step()
    assert_all_slots_free(llama_engine)


def test_a_shared_prefix_is_copied_not_decoded_again(llama_engine):
    """The twin's system prompt (or a chat's earlier turns) is decoded once: a later request
    copies those cells, and gets the same tokens as without the copy."""
    cached = LlamaCppEngine(llama_engine.gguf, llama_engine.tokenizer, slots=2, threads=1,
                            n_ctx=2048, prefix_cache=2)  # fmt: skip
    try:
        assert cached._model is llama_engine._model  # the same GGUF is loaded once
        first = chat(cached, "Tell me about the hive this week, please.")
        again = first + "And the honey?"
        cached.generate([GenRequest(first, 1, 0, 1, 4)])
        request = GenRequest(again, 2, 0, 1, 12)
        cached.admit(request)
        assert cached.running[0].reused == len(cached._tokens(first))
        with_copy = run_all(cached, {})[id(request)].texts
        assert llama_engine.generate([GenRequest(again, 2, 0, 1, 12)])[0].texts == with_copy
        for k in range(3):  # more prompts than entries: the oldest is forgotten
            cached.generate([GenRequest(chat(cached, f"Prompt {k}, a longer one."), 1, 0, 1, 2)])
        entries = cached.prefixes.entries
        assert len(entries) == 2 and sorted(
            cached.prefixes.free_ids + [e.seq_id for e in entries]
        ) == [2, 3]
        assert_all_slots_free(cached)
    finally:
        cached.close()


def test_cancelling_frees_the_slots_at_once(llama_engine):
    stop_now = threading.Event()
    long = GenRequest(chat(llama_engine, "Write a long story."), 3, 0.8, 0.95, 200, seed=2)
    long.cancelled = stop_now.is_set
    other = GenRequest(chat(llama_engine, "Say hello."), 1, 0, 1, 8)
    llama_engine.admit(long)
    llama_engine.admit(other)
    for _ in range(4):
        llama_engine.step()
    assert len(llama_engine.free_ids) == llama_engine.slots - 4
    stop_now.set()
    finished = dict((id(r), res) for r, res in llama_engine.step())
    assert finished[id(long)].finish_reasons == ["cancelled"] * 3
    assert len(llama_engine.free_ids) == llama_engine.slots - 1  # only `other` still runs
    for seq in llama_engine.running[0].seqs:
        assert llama_engine.lib.llama_memory_seq_pos_max(llama_engine.memory, seq.seq_id) >= 0
    out = run_all(llama_engine, {})
    assert out[id(other)].finish_reasons[0] in ("stop", "length")
    assert_all_slots_free(llama_engine)


def test_seeds_repeat_whatever_runs_beside_them(llama_engine):
    prompt = chat(llama_engine, "Give me three words.")
    alone = llama_engine.generate([GenRequest(prompt, 3, 1.0, 0.95, 12, seed=7)])[0]
    seeded = GenRequest(prompt, 3, 1.0, 0.95, 12, seed=7)
    noise = GenRequest(chat(llama_engine, "Tell me about tides."), 2, 1.0, 0.9, 20)
    out = run_all(llama_engine, {0: [noise], 3: [seeded]})
    assert out[id(seeded)].texts == alone.texts
    assert len(set(alone.texts)) > 1, "each candidate has its own seed"
    other_seed = llama_engine.generate([GenRequest(prompt, 3, 1.0, 0.95, 12, seed=8)])[0]
    assert other_seed.texts != alone.texts


def test_stop_strings_and_streams_are_per_sequence(llama_engine):
    prompt = chat(llama_engine, "Say hello.")
    free = llama_engine.generate([GenRequest(prompt, 1, 0, 1, 40)])[0].texts[0]
    word = free.split()[1]
    pieces: dict[tuple[str, int], str] = {}

    def collect(name: str):  # type: ignore[no-untyped-def]
        def on_text(i: int, text: str) -> None:
            pieces[(name, i)] = pieces.get((name, i), "") + text

        return on_text

    cut = GenRequest(prompt, 2, 0, 1, 40, stop=[word], on_text=collect("cut"))
    whole = GenRequest(prompt, 1, 0, 1, 40, on_text=collect("whole"))
    sampled = GenRequest(prompt, 2, 1.0, 0.95, 16, seed=3, on_text=collect("sampled"))
    out = run_all(llama_engine, {0: [whole], 2: [cut, sampled]})
    assert out[id(cut)].texts == [free[: free.find(word)]] * 2
    assert out[id(cut)].finish_reasons == ["stop", "stop"]
    assert out[id(whole)].texts[0].startswith(free[: free.find(word) + len(word)])
    for name, request in (("cut", cut), ("whole", whole), ("sampled", sampled)):
        streamed = [pieces.get((name, i), "") for i in range(request.n)]
        assert streamed == out[id(request)].texts, name


def test_end_of_turn_and_max_tokens(llama_engine):
    prompt = chat(llama_engine, "Say hello.")
    done = llama_engine.generate([GenRequest(prompt, 1, 0, 1, 200)])[0]
    assert done.finish_reasons == ["stop"] and "<|im_end|>" not in done.texts[0]
    short = llama_engine.generate([GenRequest(prompt, 2, 0, 1, 3)])[0]
    assert short.completion_tokens == [3, 3] and short.finish_reasons == ["length"] * 2


def test_too_many_candidates_or_too_long_a_prompt_is_refused(llama_engine):
    from selftune.errors import SelftuneError

    with pytest.raises(SelftuneError, match="at most 6 sequences"):
        llama_engine.generate([GenRequest("hi", 7, 0, 1, 4)])
    with pytest.raises(SelftuneError, match="context is 2048"):
        llama_engine.generate([GenRequest("word " * 2100, 1, 0, 1, 4)])
    assert_all_slots_free(llama_engine)


def test_scheduler_joins_requests_and_reuses_freed_slots(llama_engine):
    prompts = [chat(llama_engine, f"Count to {k}.") for k in range(4)]
    alone = [llama_engine.generate([GenRequest(p, 2, 0, 1, 16)])[0].texts for p in prompts]
    scheduler = Scheduler(llama_engine, max_batch=6, queue_size=8)
    try:
        # four requests of 2 candidates on 6 slots: the fourth waits for a freed slot
        jobs = [scheduler.submit(GenRequest(p, 2, 0, 1, 16)) for p in prompts]
        texts = [job.future.result(timeout=120).texts for job in jobs]
        assert texts == alone
        assert max(scheduler.batch_sizes) == 6  # three requests decoded together
        assert_all_slots_free(llama_engine)
    finally:
        scheduler.close()


def test_scheduler_cancels_a_request_whose_client_left(llama_engine):
    scheduler = Scheduler(llama_engine, max_batch=6, queue_size=8)
    try:
        job = scheduler.submit(GenRequest(chat(llama_engine, "Write a poem."), 2, 0.8, 1, 500))
        time.sleep(0.5)
        job.cancel()
        result = job.future.result(timeout=30)
        assert result.finish_reasons == ["cancelled", "cancelled"]
        assert max(result.completion_tokens) < 500
        time.sleep(0.3)
        assert_all_slots_free(llama_engine)
    finally:
        scheduler.close()


def test_scheduler_queue_pushes_back(llama_engine):
    scheduler = Scheduler(llama_engine, max_batch=6, queue_size=2)
    try:
        prompt = chat(llama_engine, "Write a poem.")
        big = scheduler.submit(GenRequest(prompt, 6, 0.8, 1, 60, seed=1))  # takes every slot
        time.sleep(0.3)
        queued = [scheduler.submit(GenRequest(prompt, 1, 0, 1, 4)) for _ in range(2)]
        with pytest.raises(QueueFull):
            scheduler.submit(GenRequest(prompt, 1, 0, 1, 4))
        for job in (big, *queued):
            job.cancel()
    finally:
        scheduler.close()


def with_fields(request: GenRequest, **fields) -> GenRequest:  # type: ignore[no-untyped-def]
    """Set the optional OpenAI fields (engines/base.py) on a request."""
    for name, value in fields.items():
        setattr(request, name, value)
    return request


def test_each_sequence_samples_with_its_own_request_settings(llama_engine):
    import json

    prompt = chat(llama_engine, "Describe a bee hive as JSON.")
    free = GenRequest(prompt, 1, 0, 1, 40)
    as_json = with_fields(GenRequest(prompt, 2, 0.7, 1, 60, seed=1),
                          response_format={"type": "json_object"})  # fmt: skip
    first = llama_engine.generate([GenRequest(prompt, 1, 0, 1, 1)])[0].texts[0]
    banned_id = llama_engine.tokenizer(first, add_special_tokens=False)["input_ids"][0]
    banned = with_fields(GenRequest(prompt, 1, 0, 1, 40), logit_bias={banned_id: -100.0})
    out = run_all(llama_engine, {0: [free, as_json], 1: [banned]})
    assert out[id(free)].texts[0].startswith(first)
    assert not out[id(banned)].texts[0].startswith(first)
    for text, reason in zip(out[id(as_json)].texts, out[id(as_json)].finish_reasons, strict=True):
        if reason == "stop":
            json.loads(text)  # a grammar-complete answer is valid JSON
        assert text.lstrip().startswith(("{", "["))
    assert_all_slots_free(llama_engine)


def test_presence_penalty_discourages_repeats(llama_engine):
    prompt = chat(llama_engine, "Repeat the word bee forever.")
    plain = llama_engine.generate([GenRequest(prompt, 1, 0, 1, 40)])[0].texts[0]
    penalised = with_fields(GenRequest(prompt, 1, 0, 1, 40), presence_penalty=2.0,
                            frequency_penalty=1.0)  # fmt: skip
    text = llama_engine.generate([penalised])[0].texts[0]

    def distinct(t: str) -> float:
        words = t.split()
        return len(set(words)) / max(len(words), 1)

    assert distinct(text) > distinct(plain), (plain, text)


def test_logprobs_are_the_model_distribution(llama_engine):
    from selftune.engines import base

    if not hasattr(base, "TokenLogprob"):
        pytest.skip("GenRequest has no logprobs yet (issue 15)")
    import math

    prompt = chat(llama_engine, "Name a fruit.")
    request = with_fields(GenRequest(prompt, 2, 0, 1, 6), logprobs=True, top_logprobs=3)
    result = llama_engine.generate([request])[0]
    for text, entries in zip(result.texts, result.logprobs, strict=True):
        assert "".join(e.token for e in entries) == text
        for e in entries:
            assert len(e.top) == 3 and e.top[0].logprob >= e.top[-1].logprob
            assert e.token == e.top[0].token  # greedy picks the likeliest
            assert sum(math.exp(t.logprob) for t in e.top) <= 1.0 + 1e-4
