"""What one step of the llama.cpp engine decodes: the requests in flight and their candidates,
and the `llama_batch` rows they fill (the next token of every generating candidate, or the next
chunk of one prompt, whose tokens belong to all the prompt's candidates at once).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from selftune.engines.base import Detokenizer, GenRequest, StopScanner


@dataclass
class Sequence:
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
class Running:
    """A request in flight: its prompt (fed to the model chunk by chunk) and its candidates."""

    request: GenRequest
    prompt: list[int]
    reserved: int
    seqs: list[Sequence]
    fed: int = 0
    reused: int = 0  # prompt tokens copied from the prefix cache
    output: int = -1  # the row of the prompt's last token, once it is fed

    @property
    def done(self) -> bool:
        return all(s.reason for s in self.seqs)


def fill_running(batch: Any, running: list[Running]) -> int:
    """The next token of every sequence that is generating, one row each."""
    b, n = batch, 0
    tokens, positions, n_seq_ids, seq_ids, logits = (
        b.token,
        b.pos,
        b.n_seq_id,
        b.seq_id,
        b.logits,
    )
    for run in running:
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


def fill_prompt(batch: Any, run: Running, n_batch: int) -> None:
    """The next chunk of `run`'s prompt; each token belongs to all its candidates."""
    b = batch
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
    chunk = run.prompt[run.fed : run.fed + n_batch]
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
