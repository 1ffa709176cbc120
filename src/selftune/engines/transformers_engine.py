"""The transformers engine: the base model or a tuned run (LoRA applied, or merged for speed).

All candidates of all requests that share sampling settings run as the rows of one `generate`
call (prompts left-padded). A per-row stopping criterion, called after every new token, does the
per-request work HF generate has no hook for: streaming each row's new text, stop strings,
per-request max_tokens and cancellation.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from selftune.engines.base import GenRequest, GenResult, StopScanner


class TransformersEngine:
    name = "transformers"

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
        groups: dict[tuple, list[int]] = {}
        for i, request in enumerate(requests):
            groups.setdefault(request.batch_key(), []).append(i)
        results: list[GenResult | None] = [None] * len(requests)
        for indices in groups.values():
            for i, result in zip(
                indices, self._generate_group([requests[i] for i in indices]), strict=True
            ):
                results[i] = result
        return [r for r in results if r is not None]

    def _generate_group(self, requests: list[GenRequest]) -> list[GenResult]:
        import torch
        from transformers import StoppingCriteria, StoppingCriteriaList

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

        class Criteria(StoppingCriteria):
            def __call__(self, ids: Any, scores: Any, **kwargs: Any) -> Any:
                return torch.tensor(tracker.step(ids), dtype=torch.bool, device=ids.device)

        first = requests[0]
        greedy = first.temperature == 0
        if first.seed is not None:
            torch.manual_seed(first.seed)
        with torch.no_grad():
            self.model.generate(
                input_ids=input_ids,
                attention_mask=attention,
                max_new_tokens=max(r.max_tokens for r in requests),
                do_sample=not greedy,
                temperature=None if greedy else first.temperature,
                top_p=None if greedy else first.top_p,
                top_k=None,
                eos_token_id=self.stop_ids,
                pad_token_id=pad,
                stopping_criteria=StoppingCriteriaList([Criteria()]),
            )
        return tracker.results([len(p) for p in prompts])


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
            if request.stop or request.on_text:
                self._emit(row, request, candidate, final=False)
                if self.scanners[row].stopped:
                    self.done[row] = "stop"
                    continue
            if len(self.tokens[row]) >= request.max_tokens:
                self.done[row] = "length"
                self._emit(row, request, candidate, final=True)
        return [d is not None for d in self.done]

    def _emit(self, row: int, request: GenRequest, candidate: int, final: bool) -> None:
        scanner = self.scanners[row]
        text = self.engine.tokenizer.decode(self.tokens[row], skip_special_tokens=True)
        new = scanner.update(text)
        if final:
            new += scanner.flush()
        if new and request.on_text:
            request.on_text(candidate, new)

    def results(self, prompt_lengths: list[int]) -> list[GenResult]:
        out = []
        for ri, request in enumerate(self.requests):
            texts, counts, reasons = [], [], []
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
            out.append(GenResult(texts, prompt_lengths[ri], counts, reasons))
        return out
