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
runs serve at once without loading the base twice. A step's batch rows are filled in
`llamacpp_batch.py`, kept prompts are reused through `llamacpp_cache.py` (the prefix cache) and
each candidate's sampler chain is built in `llamacpp_sampling.py`.
"""

from __future__ import annotations

import contextlib
import os
import random
import threading
from pathlib import Path
from typing import Any

from selftune.engines.base import (
    Detokenizer,
    GenRequest,
    GenResult,
    StopScanner,
    logprobs_within,
)
from selftune.engines.llamacpp_batch import Running, Sequence, fill_prompt, fill_running
from selftune.engines.llamacpp_cache import PrefixCache
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
        self.prefixes = PrefixCache(lib, self.memory, list(range(slots, slots + prefix_cache)))
        self.running: list[Running] = []
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
        self.prefixes.make_room(lambda cached: self.reserved + need + cached <= self.n_ctx)
        return not self.running or self.reserved + need + self.prefixes.tokens() <= self.n_ctx

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
                Sequence(
                    index,
                    self.free_ids.pop(0),
                    sampler_chain(self.lib, self.vocab, self.n_vocab, request, seed),
                    StopScanner(request.stop),
                    Detokenizer(self.tokenizer) if follow else None,
                )
            )
        need = self._reservation(request, len(prompt))
        self.reserved += need
        run = Running(request, prompt, need, seqs)
        run.fed = run.reused = self.prefixes.reuse(prompt, [q.seq_id for q in seqs])
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
        if fill_running(self.batch, self.running) and self._decode():
            self._sample(self.running)
        for run in [r for r in self.running if r.fed < len(r.prompt)]:
            fill_prompt(self.batch, run, self.n_batch)
            if self._decode(run):
                if run.fed == len(run.prompt):
                    self.prefixes.remember(run.prompt, run.seqs[0].seq_id)
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

    def _drop_cancelled(self) -> list[tuple[GenRequest, GenResult]]:
        out = []
        for run in [r for r in self.running if r.request.cancelled()]:
            for seq in run.seqs:
                seq.reason = seq.reason or "cancelled"
            out.append((run.request, self._finish(run)))
        return out

    def _decode(self, prompt_of: Running | None = None) -> bool:
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

    def _sample(self, runs: list[Running]) -> None:
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

    def _draw(self, pairs: list[tuple[Sequence, int]]) -> dict[int, int]:
        """Each sequence's next token from its own sampler chain: an O(vocabulary) pass each
        (about 10% of a step at 8 sequences on 2 cores; see docs/serving.md)."""
        sample, ctx = self.lib.llama_sampler_sample, self.ctx
        return {id(seq): sample(seq.sampler, ctx, row) for seq, row in pairs}

    def _emit(self, request: GenRequest, seq: Sequence, final: bool) -> None:
        if seq.detok is None:
            return  # decoded once, at the end
        if final:
            seq.detok.flush()
        new = seq.scanner.update(seq.detok.text)
        if final:
            new += seq.scanner.flush()
        if new and request.on_text:
            request.on_text(seq.index, new)

    def _free(self, seq: Sequence) -> None:
        self.lib.llama_memory_seq_rm(self.memory, seq.seq_id, -1, -1)
        self.free_ids.append(seq.seq_id)
        seq.seq_id = -1

    def _finish(self, run: Running) -> GenResult:
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
