"""The transformers engine: the base model or a tuned run (LoRA applied, or merged for speed).

All candidates of all requests run as the rows of one `generate` call (prompts left-padded).
HF generate runs greedy over what `RowSampler` (the last logits processor) leaves: one allowed
token per row, which it chose with that row's own settings — logit bias, presence/frequency
penalties, the response format's JSON mask (engines/response_format.py), temperature, top-p — and
its own `torch.Generator` (seeded `seed + candidate`), so a
seeded request samples the same text whatever else shares the batch. It also records the
model's log-probabilities. A per-row stopping criterion, called after every new token, streams
each row's new text and handles stop strings, per-request max_tokens and cancellation.
"""

from __future__ import annotations

import functools
import secrets
from pathlib import Path
from typing import Any

from selftune.engines.base import (
    Detokenizer,
    GenRequest,
    GenResult,
    StopScanner,
    TokenLogprob,
    logprobs_within,
)
from selftune.engines.response_format import JsonMask, masks_available, schema_of


class TransformersEngine:
    name = "transformers"
    supports = frozenset(
        {"logprobs", "top_logprobs", "presence_penalty", "frequency_penalty", "logit_bias"}
        | ({"response_format"} if masks_available() else set())
    )

    def __init__(self, model: Any, tokenizer: Any, model_id: str = "model"):
        self.model = model
        self.tokenizer = tokenizer
        self.model_id = model_id
        if tokenizer.pad_token is None:
            tokenizer.pad_token = tokenizer.eos_token
        configured = getattr(model.generation_config, "eos_token_id", None)
        ids = configured if isinstance(configured, list) else [configured]
        self.stop_ids = sorted({t for t in (*ids, tokenizer.eos_token_id) if t is not None})

    @classmethod
    def from_base(cls, base: str, model_id: str = "base") -> TransformersEngine:
        from selftune.models import load_model, load_tokenizer

        model = load_model(base)
        model.eval()
        return cls(model, load_tokenizer(base), model_id)

    @classmethod
    def from_run(cls, run_dir: Path, model_id: str, merge: bool = True) -> TransformersEngine:
        """A tuned run; `merge` folds the LoRA weights into the base (same output, faster)."""
        from selftune.models import load_tuned

        model, tokenizer = load_tuned(run_dir)
        if merge and hasattr(model, "merge_and_unload"):  # a full fine-tune has nothing to merge
            model = model.merge_and_unload()
            model.eval()
        return cls(model, tokenizer, model_id)

    def generate(self, requests: list[GenRequest]) -> list[GenResult]:
        """All candidates of all requests in one batch (each row samples with its own settings)."""
        if not requests:
            return []
        import torch
        from transformers import LogitsProcessorList, StoppingCriteria, StoppingCriteriaList

        tok = self.tokenizer
        prompts = [tok(r.prompt, add_special_tokens=False)["input_ids"] for r in requests]
        rows = [(ri, c) for ri, r in enumerate(requests) for c in range(r.n)]
        width = max(len(p) for p in prompts)
        pad = tok.pad_token_id
        input_ids = torch.full((len(rows), width), pad, dtype=torch.long)
        attention = torch.zeros((len(rows), width), dtype=torch.long)
        for row, (ri, _) in enumerate(rows):
            ids = prompts[ri]
            input_ids[row, width - len(ids) :] = torch.tensor(ids, dtype=torch.long)
            attention[row, width - len(ids) :] = 1
        tracker = _RowTracker(self, requests, rows, width)
        sampler = RowSampler(self, requests, rows, width, tracker)

        class Criteria(StoppingCriteria):
            def __call__(self, ids: Any, scores: Any, **kwargs: Any) -> Any:
                return torch.tensor(tracker.step(ids), dtype=torch.bool, device=ids.device)

        with torch.no_grad():
            self.model.generate(
                input_ids=input_ids.to(self.model.device),
                attention_mask=attention.to(self.model.device),
                max_new_tokens=max(r.max_tokens for r in requests),
                do_sample=False,  # RowSampler already chose; greedy takes its one allowed token
                temperature=None,
                top_p=None,
                top_k=None,
                eos_token_id=self.stop_ids,
                pad_token_id=pad,
                logits_processor=LogitsProcessorList([sampler]),
                stopping_criteria=StoppingCriteriaList([Criteria()]),
            )
        tracker.logprobs = sampler.logprobs
        return tracker.results([len(p) for p in prompts])


class RowSampler:
    """A logits processor that picks each row's next token itself and masks all others.

    Per row: logit bias, presence/frequency penalties over the tokens generated so far (OpenAI's
    definition), then greedy (temperature 0) or temperature + top-p sampling with the row's own
    generator. Log-probabilities are the model's own (log-softmax of the raw logits), as
    OpenAI and vLLM report them.
    """

    def __init__(self, engine: TransformersEngine, requests, rows, width: int, tracker):  # type: ignore[no-untyped-def]
        import torch

        self.engine = engine
        self.requests = requests
        self.rows = rows
        self.width = width
        self.tracker = tracker
        self.generators = []
        for ri, candidate in rows:
            seed = requests[ri].seed
            g = torch.Generator()
            g.manual_seed((seed + candidate) if seed is not None else secrets.randbits(63))
            self.generators.append(g)
        self.logprobs: list[list[TokenLogprob]] = [[] for _ in rows]
        self._bytes: dict[int, bytes] = {}
        eos = engine.stop_ids
        self.masks = [
            JsonMask(engine.tokenizer, requests[ri].response_format, eos)
            if schema_of(requests[ri].response_format) is not None
            else None
            for ri, _ in rows
        ]

    def __call__(self, input_ids: Any, scores: Any) -> Any:
        import torch

        raw = scores.float()
        logits = raw.clone()
        generated = input_ids[:, self.width :]
        active = [row for row in range(len(self.rows)) if not self.tracker.done[row]]
        requests = [self.requests[ri] for ri, _ in self.rows]
        for row in active:
            self._adjust(logits[row], requests[row], generated[row])
            mask = self.masks[row]
            if mask is not None:  # the JSON so far allows only these tokens next
                if generated.shape[1]:
                    mask.advance(int(generated[row, -1]))
                logits[row].masked_fill_(~mask.allowed(logits.shape[-1]), float("-inf"))
        chosen = logits.argmax(dim=-1).cpu()  # the greedy rows' choice; sampled rows overwrite it
        sampled = [row for row in active if requests[row].temperature > 0]
        if sampled:
            device = logits.device
            index = torch.tensor(sampled, device=device)
            temperature = torch.tensor([requests[r].temperature for r in sampled], device=device)
            top_p = torch.tensor([requests[r].top_p for r in sampled], device=device)
            probs = torch.softmax(logits[index] / temperature[:, None], dim=-1)
            ordered, order = torch.sort(probs, dim=-1, descending=True)
            # top-p keeps the smallest set of most likely tokens reaching top_p (at least one)
            keep = (torch.cumsum(ordered, dim=-1) - ordered < top_p[:, None]) | (
                top_p[:, None] >= 1
            )
            probs = torch.zeros_like(probs).scatter_(-1, order, ordered * keep).cpu()
            for k, row in enumerate(sampled):
                chosen[row] = torch.multinomial(probs[k], 1, generator=self.generators[row])[0]
        wanted = [r for r in active if requests[r].logprobs or requests[r].top_logprobs]
        if wanted:
            self._record(raw, chosen, wanted, requests)
        out = torch.full_like(scores, float("-inf"))
        for row in range(len(self.rows)):
            token = int(chosen[row]) if row in active else self.engine.tokenizer.pad_token_id
            out[row, token] = 0
        return out

    @staticmethod
    def _adjust(logits: Any, request: GenRequest, generated: Any) -> None:
        """OpenAI's logit bias and presence/frequency penalties, in place on one row."""
        import torch

        if request.logit_bias:
            ids = torch.tensor(list(request.logit_bias), dtype=torch.long, device=logits.device)
            bias = torch.tensor(list(request.logit_bias.values()), device=logits.device)
            logits[ids] += bias.to(logits.dtype)
        if (request.presence_penalty or request.frequency_penalty) and generated.numel():
            counts = torch.bincount(generated, minlength=logits.shape[0]).to(logits)
            logits -= counts * request.frequency_penalty
            logits -= (counts > 0).to(logits) * request.presence_penalty

    def _record(self, raw: Any, chosen: Any, rows: list[int], requests: list[GenRequest]) -> None:
        import torch

        logprobs = torch.log_softmax(raw[rows], dim=-1).cpu()
        top = max(requests[r].top_logprobs for r in rows)
        values, ids = torch.topk(logprobs, top, dim=-1) if top else (None, None)
        for k, row in enumerate(rows):
            token = int(chosen[row])
            entry = self._entry(token, float(logprobs[k, token]))
            n = requests[row].top_logprobs
            if n and values is not None:
                entry.top = [self._entry(int(i), float(v)) for v, i in
                             zip(values[k, :n], ids[k, :n], strict=True)]  # fmt: skip
            self.logprobs[row].append(entry)

    def _entry(self, token: int, logprob: float) -> TokenLogprob:
        raw = self._bytes.get(token)
        if raw is None:
            raw = self._bytes[token] = token_bytes(self.engine.tokenizer, token)
        return TokenLogprob(raw.decode("utf-8", errors="replace"), logprob, list(raw))


def token_bytes(tokenizer: Any, token: int) -> bytes:
    """The bytes a token stands for (byte-level BPE maps bytes to printable characters)."""
    piece = tokenizer.convert_ids_to_tokens(token)
    if piece is None:
        return b""
    if token in tokenizer.all_special_ids:
        return piece.encode("utf-8")
    decoder = _byte_decoder()
    if all(c in decoder for c in piece):
        return bytes(decoder[c] for c in piece)
    return tokenizer.decode([token]).encode("utf-8")  # SentencePiece and other vocabularies


@functools.cache
def _byte_decoder() -> dict[str, int]:
    from transformers.convert_slow_tokenizer import bytes_to_unicode

    return {c: b for b, c in bytes_to_unicode().items()}


class _RowTracker:
    """Per-row state while one batch generates: tokens so far, stop strings, finish reasons."""

    def __init__(self, engine: TransformersEngine, requests: list[GenRequest], rows, width: int):
        self.engine = engine
        self.requests = requests
        self.rows = rows
        self.width = width
        self.tokens: list[list[int]] = [[] for _ in rows]
        self.done: list[str | None] = [None] * len(rows)
        self.scanners = [StopScanner(requests[ri].stop) for ri, _ in rows]
        self.detoks = [  # rows whose text is followed as it grows (streamed, or stop strings)
            Detokenizer(engine.tokenizer) if requests[ri].stop or requests[ri].on_text else None
            for ri, _ in rows
        ]
        self.logprobs: list[list[TokenLogprob]] = [[] for _ in rows]

    def step(self, ids: Any) -> list[bool]:
        last = ids[:, -1].tolist()
        cancelled = {ri for ri, r in enumerate(self.requests) if r.cancelled()}
        for row, (ri, candidate) in enumerate(self.rows):
            if self.done[row]:
                continue
            request = self.requests[ri]
            if ri in cancelled:
                self.done[row] = "cancelled"
                continue
            if last[row] in self.engine.stop_ids:
                self.done[row] = "stop"
                self._emit(row, request, candidate, final=True)
                continue
            self.tokens[row].append(last[row])
            if (detok := self.detoks[row]) is not None:
                detok.add(last[row])
                self._emit(row, request, candidate, final=False)
                if self.scanners[row].stopped:
                    self.done[row] = "stop"
                    continue
            if len(self.tokens[row]) >= request.max_tokens:
                self.done[row] = "length"
                self._emit(row, request, candidate, final=True)
        return [d is not None for d in self.done]

    def _emit(self, row: int, request: GenRequest, candidate: int, final: bool) -> None:
        scanner, detok = self.scanners[row], self.detoks[row]
        if detok is not None:
            if final:
                detok.flush()
            text = detok.text
        else:
            text = self.engine.tokenizer.decode(self.tokens[row], skip_special_tokens=True)
        new = scanner.update(text)
        if final:
            new += scanner.flush()
        if new and request.on_text:
            request.on_text(candidate, new)

    def results(self, prompt_lengths: list[int]) -> list[GenResult]:
        out = []
        for ri, request in enumerate(self.requests):
            texts, counts, reasons, logprobs = [], [], [], []
            for row, (owner, _) in enumerate(self.rows):
                if owner != ri:
                    continue
                if not self.done[row]:  # generate ran out of new tokens for the whole batch
                    self.done[row] = "length"
                    self._emit(row, request, len(texts), final=True)
                scanner = self.scanners[row]
                if not scanner.text and self.tokens[row]:
                    scanner.update(
                        self.engine.tokenizer.decode(self.tokens[row], skip_special_tokens=True)
                    )
                texts.append(scanner.text)
                counts.append(len(self.tokens[row]))
                reasons.append(self.done[row] or "length")
                logprobs.append(logprobs_within(self.logprobs[row], scanner.text))
            wanted = request.logprobs or request.top_logprobs
            out.append(
                GenResult(texts, prompt_lengths[ri], counts, reasons, logprobs if wanted else None)
            )
        return out
