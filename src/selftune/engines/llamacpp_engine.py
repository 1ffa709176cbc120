"""The llama.cpp engine on a GGUF file: continuous batching of every candidate of every request.

Built on llama-cpp-python's low-level API (the same calls as llama.cpp's examples/parallel): one
context whose KV cache all sequences share (`kv_unified`), one `llama_batch` per step holding the
next token of every running sequence plus the prompt chunks of requests that just joined. A
request's prompt is decoded once for all its n candidates (each prompt token carries the n
sequence ids, so the cache cells are shared), each candidate samples with its own sampler chain
(its request's temperature, top-p and seed), a new request joins at the next step, and a finished
or cancelled sequence frees its slot at once.

Prompts are rendered and tokenized by the Hugging Face tokenizer, and tokens decoded by it, so
both engines see and produce the same token streams. One loaded GGUF is shared by every engine
that runs it (a run's LoRA adapter is applied to its own context; `llamacpp_model.py`), so two
runs serve at once without loading the base twice.
"""

from __future__ import annotations

import contextlib
import os
import random
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from selftune.engines.base import (
    Detokenizer,
    GenRequest,
    GenResult,
    StopScanner,
    logprobs_within,
)
from selftune.engines.llamacpp_model import (  # selection.py and the tests ask here
    NEEDED_CALLS as NEEDED_CALLS,
)
from selftune.engines.llamacpp_model import SharedModel as _SharedModel
from selftune.engines.llamacpp_model import apply_lora
from selftune.engines.llamacpp_model import available as available
from selftune.engines.llamacpp_model import load_library as _lib
from selftune.engines.llamacpp_model import missing_features as missing_features
from selftune.engines.llamacpp_model import unsupported_reason as unsupported_reason
from selftune.engines.llamacpp_sampling import logprob, sampler_chain
from selftune.errors import SelftuneError

END_OF_TURN = ("<|im_end|>", "<|eot_id|>", "<|end|>", "<end_of_turn>")
MIN_REUSE = 16  # shorter shared prefixes are decoded again rather than copied


@dataclass
class _Sequence:
    """One candidate: its KV sequence id, sampler chain, tokens, text (decoded as it grows when
    it streams or has stop strings) and stop-string scanner."""

    index: int
    seq_id: int
    sampler: Any
    scanner: StopScanner
    detok: Detokenizer | None = None
    tokens: list[int] = field(default_factory=list)
    pos: int = 0
    output: int = -1  # its row among this step's logits, -1 when it has none
    reason: str | None = None
    logprobs: list[Any] = field(default_factory=list)


@dataclass
class _Cached:
    seq_id: int
    tokens: list[int]


def _common_prefix(a: list[int], b: list[int]) -> int:
    n = 0
    for x, y in zip(a, b, strict=False):
        if x != y:
            break
        n += 1
    return n


@dataclass
class _Running:
    """A request in flight: its prompt (fed to the model chunk by chunk) and its candidates."""

    request: GenRequest
    prompt: list[int]
    reserved: int
    seqs: list[_Sequence]
    fed: int = 0
    reused: int = 0  # prompt tokens copied from the prefix cache
    output: int = -1  # the row of the prompt's last token, once it is fed

    @property
    def done(self) -> bool:
        return all(s.reason for s in self.seqs)


class LlamaCppEngine:
    """`generate()` runs requests to the end; `admit()` and `step()` let a scheduler add
    requests while others run (see `selftune.server.scheduler`)."""

    name = "llamacpp"
    continuous = True
    # optional request fields (engines/base.py) this engine honours, each in the sequence's own
    # sampler chain: llama.cpp's logit-bias, penalties and grammar samplers
    supports = frozenset(
        {"logprobs", "top_logprobs", "presence_penalty", "frequency_penalty", "logit_bias",
         "response_format"}
    )  # fmt: skip

    def __init__(
        self,
        gguf: Path,
        tokenizer: Any,
        model_id: str = "model",
        n_ctx: int = 8192,
        slots: int = 16,
        prefix_cache: int = 4,
        threads: int | None = None,
        n_batch: int = 512,
        lora: Path | None = None,
        lora_scale: float = 1.0,
    ):
        lib = _lib()
        if not Path(gguf).exists():
            raise SelftuneError(f"{gguf} does not exist; run `selftune export` first")
        self.lib, self.gguf, self.lora = lib, Path(gguf), lora
        self.tokenizer, self.model_id, self.slots = tokenizer, model_id, slots
        lib.llama_backend_init()
        self._model = _SharedModel.acquire(lib, self.gguf)
        model = self._model.pointer
        self.n_ctx_train = lib.llama_model_n_ctx_train(model)
        params = lib.llama_context_default_params()
        params.n_ctx = min(n_ctx, self.n_ctx_train) if self.n_ctx_train > 0 else n_ctx
        params.n_batch = params.n_ubatch = n_batch
        params.n_seq_max = slots + prefix_cache
        params.kv_unified = True  # every sequence may use the whole cache; prompts are shared
        params.n_threads = params.n_threads_batch = threads or os.cpu_count() or 1
        params.no_perf = True
        params.flash_attn_type = lib.LLAMA_FLASH_ATTN_TYPE_ENABLED
        self.ctx = lib.llama_init_from_model(model, params)
        if not self.ctx:
            self._model.release()
            raise SelftuneError(f"llama.cpp could not make a context of {params.n_ctx} tokens")
        self.n_ctx, self.n_batch = lib.llama_n_ctx(self.ctx), n_batch
        self.memory = lib.llama_get_memory(self.ctx)
        self.vocab = lib.llama_model_get_vocab(model)
        self.n_vocab = lib.llama_vocab_n_tokens(self.vocab)
        self.batch = lib.llama_batch_init(n_batch, 0, slots + prefix_cache)
        self._adapter = None
        if lora is not None:
            self._adapter = apply_lora(lib, model, self.ctx, Path(lora), lora_scale)
        if tokenizer.pad_token is None:
            tokenizer.pad_token = tokenizer.eos_token
        self.stop_ids = {tokenizer.eos_token_id} - {None}
        for token in END_OF_TURN:
            tid = tokenizer.convert_tokens_to_ids(token)
            if isinstance(tid, int) and tid != tokenizer.unk_token_id:
                self.stop_ids.add(tid)
        self.free_ids = list(range(slots))
        # prompts kept in the cache (their own sequence ids past the slots), most recent last:
        # a request whose prompt starts like one of them copies those cells instead of
        # decoding them again (the twin's system prompt, a chat's earlier turns, "give me N
        # more")
        self.cache_ids = list(range(slots, slots + prefix_cache))
        self.cached: list[_Cached] = []
        self.running: list[_Running] = []
        self.reserved = 0
        self.steps = 0
        self._last_prompt: tuple[str | None, list[int]] = (None, [])
        self._lock = threading.RLock()  # one caller at a time: a scheduler, or generate()

    # -- what a scheduler calls -------------------------------------------------------------

    def busy(self) -> bool:
        return bool(self.running)

    def can_admit(self, request: GenRequest) -> bool:
        """Free sequence slots for all its candidates, and cache room for its worst case (a
        request that could never fit is admitted alone, and stops at "length" when it fills)."""
        if request.n > len(self.free_ids):
            return not self.running and request.n > self.slots  # fails in admit, with a reason
        need = self._reservation(request)
        while self.cached and self.reserved + need + self._cached_tokens() > self.n_ctx:
            self._forget(self.cached[0])
        return not self.running or self.reserved + need + self._cached_tokens() <= self.n_ctx

    def admit(self, request: GenRequest) -> None:
        """Start `request` at the next step (its prompt is decoded then)."""
        if request.n > self.slots:
            raise SelftuneError(
                f"n is {request.n}; this llama.cpp engine runs at most {self.slots} sequences "
                "(serve.max_batch)"
            )
        with self._lock:
            self._admit(request)

    def _admit(self, request: GenRequest) -> None:
        prompt = self._tokens(request.prompt)
        room = self.n_ctx - len(prompt)
        if room < 1 or not prompt:
            raise SelftuneError(
                f"the prompt has {len(prompt)} tokens; this model's context is {self.n_ctx}"
            )
        seqs = []
        follow = bool(request.stop or request.on_text)  # decode as it grows, not at the end
        for index in range(request.n):
            seed = request.seed + index if request.seed is not None else random.getrandbits(31)
            seqs.append(
                _Sequence(
                    index,
                    self.free_ids.pop(0),
                    sampler_chain(self.lib, self.vocab, self.n_vocab, request, seed),
                    StopScanner(request.stop),
                    Detokenizer(self.tokenizer) if follow else None,
                )
            )
        need = self._reservation(request, len(prompt))
        self.reserved += need
        run = _Running(request, prompt, need, seqs)
        self._reuse_prefix(run)
        self.running.append(run)

    def step(self) -> list[tuple[GenRequest, GenResult]]:
        """Decode one token for every running sequence, then the next chunk of every prompt
        still being read; returns the requests that finished.

        The running sequences' tokens go in one batch and each prompt chunk in a batch of its
        own: llama.cpp's CPU kernels change at 64 rows, so mixing a new prompt into the running
        batch would change the running sequences' numbers (and a near-tie, their greedy tokens).
        Kept apart, every sequence gets the same tokens as when it runs alone."""
        with self._lock:
            return self._step()

    def _step(self) -> list[tuple[GenRequest, GenResult]]:
        finished = self._drop_cancelled()
        if self._fill_running() and self._decode():
            self._sample(self.running)
        for run in [r for r in self.running if r.fed < len(r.prompt)]:
            self._fill_prompt(run)
            if self._decode(run):
                if run.fed == len(run.prompt):
                    self._remember(run)
                self._sample([run])
        self.steps += 1
        for run in [r for r in self.running if r.done]:
            finished.append((run.request, self._finish(run)))
        return finished

    def active_sequences(self) -> int:
        return sum(1 for r in self.running for s in r.seqs if not s.reason)

    # -- one-shot use (CLI, tests) ----------------------------------------------------------

    def generate(self, requests: list[GenRequest]) -> list[GenResult]:
        results: dict[int, GenResult] = {}
        waiting = list(requests)
        with self._lock:
            while waiting or self.running:
                while waiting and self.can_admit(waiting[0]):
                    self.admit(waiting.pop(0))
                for request, result in self.step():
                    results[id(request)] = result
        return [results[id(r)] for r in requests]

    def close(self) -> None:
        if getattr(self, "ctx", None):
            for run in self.running:
                for seq in run.seqs:
                    self.lib.llama_sampler_free(seq.sampler)
            self.running = []
            self.lib.llama_batch_free(self.batch)
            self.lib.llama_free(self.ctx)
            if self._adapter is not None:
                self.lib.llama_adapter_lora_free(self._adapter)
            self.ctx = None
            self._model.release()

    def __del__(self) -> None:
        with contextlib.suppress(Exception):  # at interpreter exit the library may be gone
            self.close()

    # -- inside a step ----------------------------------------------------------------------

    def _tokens(self, prompt: str) -> list[int]:
        """The prompt's tokens; the last prompt's are kept, as the scheduler asks `can_admit`
        (perhaps several times) and then `admit` of the same request."""
        if self._last_prompt[0] != prompt:
            ids = self.tokenizer(prompt, add_special_tokens=False)["input_ids"]
            self._last_prompt = (prompt, ids)
        return list(self._last_prompt[1])

    def _reservation(self, request: GenRequest, prompt_len: int | None = None) -> int:
        if prompt_len is None:
            prompt_len = len(self._tokens(request.prompt))
        return prompt_len + request.n * request.max_tokens

    def _reuse_prefix(self, run: _Running) -> None:
        """Start `run` from the cached prompt sharing the longest prefix with it (at least the
        last prompt token is decoded again: its logits are not kept)."""
        best, common = None, 0
        for entry in self.cached:
            n = _common_prefix(entry.tokens, run.prompt)
            if n > common:
                best, common = entry, n
        common = min(common, len(run.prompt) - 1)
        if best is None or common < MIN_REUSE:
            return
        for seq in run.seqs:
            self.lib.llama_memory_seq_cp(self.memory, best.seq_id, seq.seq_id, 0, common)
        run.fed = run.reused = common
        self.cached.remove(best)
        self.cached.append(best)

    def _remember(self, run: _Running) -> None:
        """Keep `run`'s prompt in the cache (its cells are shared, not copied)."""
        if not self.cache_ids and not self.cached or len(run.prompt) < MIN_REUSE:
            return
        for entry in self.cached:
            if entry.tokens == run.prompt:
                self.cached.remove(entry)
                self.cached.append(entry)
                return
        if not self.cache_ids:
            self._forget(self.cached[0])
        seq_id = self.cache_ids.pop()
        self.lib.llama_memory_seq_cp(self.memory, run.seqs[0].seq_id, seq_id, 0, len(run.prompt))
        self.cached.append(_Cached(seq_id, list(run.prompt)))

    def _forget(self, entry: _Cached) -> None:
        self.lib.llama_memory_seq_rm(self.memory, entry.seq_id, -1, -1)
        self.cached.remove(entry)
        self.cache_ids.append(entry.seq_id)

    def _cached_tokens(self) -> int:
        return sum(len(e.tokens) for e in self.cached)

    def _drop_cancelled(self) -> list[tuple[GenRequest, GenResult]]:
        out = []
        for run in [r for r in self.running if r.request.cancelled()]:
            for seq in run.seqs:
                seq.reason = seq.reason or "cancelled"
            out.append((run.request, self._finish(run)))
        return out

    def _fill_running(self) -> int:
        """The next token of every sequence that is generating, one row each."""
        b, n = self.batch, 0
        tokens, positions, n_seq_ids, seq_ids, logits = (
            b.token,
            b.pos,
            b.n_seq_id,
            b.seq_id,
            b.logits,
        )
        for run in self.running:
            run.output = -1
            for seq in run.seqs:
                seq.output = -1
                if seq.reason or run.fed < len(run.prompt):
                    continue
                tokens[n], positions[n], n_seq_ids[n], logits[n] = seq.tokens[-1], seq.pos, 1, 1
                seq_ids[n][0] = seq.seq_id
                seq.output, seq.pos, n = n, seq.pos + 1, n + 1
        b.n_tokens = n
        return n

    def _fill_prompt(self, run: _Running) -> None:
        """The next chunk of `run`'s prompt; each token belongs to all its candidates."""
        b = self.batch
        tokens, positions, n_seq_ids, seq_ids, logits = (
            b.token,
            b.pos,
            b.n_seq_id,
            b.seq_id,
            b.logits,
        )
        for seq in run.seqs:
            seq.output = -1
        ids = [s.seq_id for s in run.seqs if s.seq_id >= 0]
        chunk = run.prompt[run.fed : run.fed + self.n_batch]
        for n, token in enumerate(chunk):
            tokens[n], positions[n], n_seq_ids[n], logits[n] = token, run.fed + n, len(ids), 0
            row = seq_ids[n]
            for j, seq_id in enumerate(ids):
                row[j] = seq_id
        run.fed += len(chunk)
        b.n_tokens = len(chunk)
        if run.fed == len(run.prompt):
            logits[len(chunk) - 1], run.output = 1, len(chunk) - 1
            for seq in run.seqs:
                seq.pos = run.fed

    def _decode(self, prompt_of: _Running | None = None) -> bool:
        """Run the batch; False when the cache is full (then the longest candidate ends at
        "length" to make room, and the batch's tokens are taken back to go in next step)."""
        code = self.lib.llama_decode(self.ctx, self.batch)
        if code == 0:
            return True
        if code != 1:
            raise SelftuneError(f"llama.cpp failed to decode a batch (code {code})")
        if prompt_of is not None:
            prompt_of.fed -= self.batch.n_tokens
            prompt_of.output = -1
        for seq in (s for r in self.running for s in r.seqs if s.output >= 0):
            seq.output, seq.pos = -1, seq.pos - 1
        longest = max(
            (s for r in self.running for s in r.seqs if not s.reason),
            key=lambda s: len(s.tokens),
        )
        longest.reason = "length"
        self._free(longest)
        return False

    def _sample(self, runs: list[_Running]) -> None:
        rows = {
            id(seq): row
            for run in runs
            for seq in run.seqs
            if not seq.reason and (row := seq.output if seq.output >= 0 else run.output) >= 0
        }
        drawn = self._draw(
            [(seq, rows[id(seq)]) for r in runs for seq in r.seqs if id(seq) in rows]
        )
        limit = self.n_ctx
        for run in runs:
            request = run.request
            for seq in run.seqs:
                token = drawn.get(id(seq))
                if token is None:
                    continue
                if getattr(request, "logprobs", False) or getattr(request, "top_logprobs", 0):
                    seq.logprobs.append(
                        logprob(self.lib, self.ctx, self.n_vocab, self.tokenizer, rows[id(seq)],
                                token, getattr(request, "top_logprobs", 0))
                    )  # fmt: skip
                if token in self.stop_ids or self.lib.llama_vocab_is_eog(self.vocab, token):
                    seq.reason = "stop"
                    self._emit(request, seq, final=True)
                    continue
                seq.tokens.append(token)
                if seq.detok is not None:
                    seq.detok.add(token)
                    self._emit(request, seq, final=False)
                    if seq.scanner.stopped:
                        seq.reason = "stop"
                        continue
                if len(seq.tokens) >= request.max_tokens or seq.pos + 1 >= limit:
                    seq.reason = "length"
                    self._emit(request, seq, final=True)
            for seq in run.seqs:
                if seq.reason and seq.seq_id >= 0:
                    self._free(seq)

    def _draw(self, pairs: list[tuple[_Sequence, int]]) -> dict[int, int]:
        """Each sequence's next token from its own sampler chain: an O(vocabulary) pass each
        (about 10% of a step at 8 sequences on 2 cores; see docs/serving.md)."""
        sample, ctx = self.lib.llama_sampler_sample, self.ctx
        return {id(seq): sample(seq.sampler, ctx, row) for seq, row in pairs}

    def _emit(self, request: GenRequest, seq: _Sequence, final: bool) -> None:
        if seq.detok is None:
            return  # decoded once, at the end
        if final:
            seq.detok.flush()
        new = seq.scanner.update(seq.detok.text)
        if final:
            new += seq.scanner.flush()
        if new and request.on_text:
            request.on_text(seq.index, new)

    def _free(self, seq: _Sequence) -> None:
        self.lib.llama_memory_seq_rm(self.memory, seq.seq_id, -1, -1)
        self.free_ids.append(seq.seq_id)
        seq.seq_id = -1

    def _finish(self, run: _Running) -> GenResult:
        self.running.remove(run)
        self.reserved -= run.reserved
        texts, counts, reasons = [], [], []
        for seq in run.seqs:
            if seq.seq_id >= 0:
                self._free(seq)
            self.lib.llama_sampler_free(seq.sampler)
            if not seq.scanner.text and seq.tokens and not seq.scanner.stopped:
                seq.scanner.update(self.tokenizer.decode(seq.tokens, skip_special_tokens=True))
            texts.append(seq.scanner.text)
            counts.append(len(seq.tokens))
            reasons.append(seq.reason or "length")
        result = GenResult(texts, len(run.prompt), counts, reasons)
        request = run.request
        if getattr(request, "logprobs", False) or getattr(request, "top_logprobs", 0):
            result.logprobs = [
                logprobs_within(s.logprobs, t) for s, t in zip(run.seqs, texts, strict=True)
            ]
        return result
