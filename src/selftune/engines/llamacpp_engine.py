"""The llama.cpp engine (llama-cpp-python) on a GGUF file: the fast CPU path.

Prompts are rendered with the Hugging Face tokenizer's chat template and tokenized by that same
tokenizer, and tokens are decoded by it too, so both engines see and produce identical token
streams. llama-cpp-python's high-level API samples one sequence at a time: the n candidates run
one after another, and llama.cpp reuses the prompt's evaluated prefix between them, so the prompt
is processed once.
"""

from __future__ import annotations

import os
import random
from pathlib import Path
from typing import Any

from selftune.engines.base import GenRequest, GenResult, StopScanner
from selftune.errors import SelftuneError


def available() -> bool:
    try:
        import llama_cpp  # noqa: F401
    except ImportError:
        return False
    return True


class LlamaCppEngine:
    name = "llamacpp"

    def __init__(
        self,
        gguf: Path,
        tokenizer: Any,
        model_id: str = "model",
        n_ctx: int = 2048,
        threads: int | None = None,
    ):
        try:
            from llama_cpp import Llama
        except ImportError as exc:
            raise SelftuneError(
                "the llama.cpp engine needs llama-cpp-python: pip install 'selftune[llamacpp]'"
            ) from exc
        if not Path(gguf).exists():
            raise SelftuneError(f"{gguf} does not exist; run `selftune export` first")
        self.llama = Llama(
            model_path=str(gguf),
            n_ctx=n_ctx,
            n_threads=threads or os.cpu_count() or 1,
            verbose=False,
        )
        self.gguf = Path(gguf)
        self.tokenizer = tokenizer
        self.model_id = model_id
        if tokenizer.pad_token is None:
            tokenizer.pad_token = tokenizer.eos_token
        self.stop_ids = {self.llama.token_eos(), tokenizer.eos_token_id} - {None}
        for token in ("<|im_end|>", "<|eot_id|>", "<|end|>", "<end_of_turn>"):
            tid = tokenizer.convert_tokens_to_ids(token)
            if isinstance(tid, int) and tid != tokenizer.unk_token_id:
                self.stop_ids.add(tid)

    def generate(self, requests: list[GenRequest]) -> list[GenResult]:
        return [self._one(r) for r in requests]

    def _one(self, request: GenRequest) -> GenResult:
        prompt = self.tokenizer(request.prompt, add_special_tokens=False)["input_ids"]
        room = self.llama.n_ctx() - len(prompt)
        if room < 1:
            raise SelftuneError(
                f"the prompt has {len(prompt)} tokens; this model's context is {self.llama.n_ctx()}"
            )
        texts, counts, reasons = [], [], []
        for candidate in range(request.n):
            seed = request.seed + candidate if request.seed is not None else random.getrandbits(31)
            text, count, reason = self._candidate(request, prompt, candidate, seed, room)
            texts.append(text)
            counts.append(count)
            reasons.append(reason)
        return GenResult(texts, len(prompt), counts, reasons)

    def _candidate(
        self, request: GenRequest, prompt: list[int], candidate: int, seed: int, room: int
    ) -> tuple[str, int, str]:
        self.llama.set_seed(seed)
        scanner = StopScanner(request.stop)
        tokens: list[int] = []
        reason = "length"
        stream = self.llama.generate(
            prompt,
            temp=request.temperature,
            top_p=request.top_p,
            top_k=0,
            min_p=0.0,
            repeat_penalty=1.0,
        )
        for token in stream:
            if request.cancelled():
                reason = "cancelled"
                break
            if token in self.stop_ids:
                reason = "stop"
                break
            tokens.append(token)
            if request.stop or request.on_text:
                new = scanner.update(self.tokenizer.decode(tokens, skip_special_tokens=True))
                if new and request.on_text:
                    request.on_text(candidate, new)
                if scanner.stopped:
                    reason = "stop"
                    break
            if len(tokens) >= min(request.max_tokens, room):
                break
        if not scanner.text and tokens:
            scanner.update(self.tokenizer.decode(tokens, skip_special_tokens=True))
        rest = scanner.flush()
        if rest and request.on_text and reason != "cancelled":
            request.on_text(candidate, rest)
        return scanner.text, len(tokens), reason
