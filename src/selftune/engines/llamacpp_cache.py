"""The llama.cpp engine's prefix cache: prompts kept in the KV cache under sequence ids of their
own (past the slots), most recent last. A request whose prompt starts like one of them copies
those cells to its sequences instead of decoding them again (the twin's system prompt, a chat's
earlier turns, "give me N more"); the cells are shared, not duplicated.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

MIN_REUSE = 16  # shorter shared prefixes are decoded again rather than copied


@dataclass
class Cached:
    seq_id: int
    tokens: list[int]


def common_prefix(a: list[int], b: list[int]) -> int:
    n = 0
    for x, y in zip(a, b, strict=False):
        if x != y:
            break
        n += 1
    return n


class PrefixCache:
    """Up to `len(seq_ids)` prompts in `memory` (a llama.cpp context's KV memory)."""

    def __init__(self, lib: Any, memory: Any, seq_ids: list[int]):
        self.lib, self.memory = lib, memory
        self.free_ids = list(seq_ids)
        self.entries: list[Cached] = []

    def tokens(self) -> int:
        """Cache cells the kept prompts hold."""
        return sum(len(e.tokens) for e in self.entries)

    def make_room(self, fits) -> None:  # type: ignore[no-untyped-def]
        """Forget the oldest prompts until `fits(cached_tokens)` or none is left."""
        while self.entries and not fits(self.tokens()):
            self.forget(self.entries[0])

    def reuse(self, prompt: list[int], seq_ids: list[int]) -> int:
        """Copy the longest kept prefix of `prompt` into `seq_ids`; returns how many tokens it
        covers (0 when none is worth it). At least the last prompt token is left to decode
        again: its logits are not kept."""
        best, common = None, 0
        for entry in self.entries:
            n = common_prefix(entry.tokens, prompt)
            if n > common:
                best, common = entry, n
        common = min(common, len(prompt) - 1)
        if best is None or common < MIN_REUSE:
            return 0
        for seq_id in seq_ids:
            self.lib.llama_memory_seq_cp(self.memory, best.seq_id, seq_id, 0, common)
        self.entries.remove(best)
        self.entries.append(best)
        return common

    def remember(self, prompt: list[int], seq_id: int) -> None:
        """Keep `prompt`, decoded in sequence `seq_id`, for later requests."""
        if not self.free_ids and not self.entries or len(prompt) < MIN_REUSE:
            return
        for entry in self.entries:
            if entry.tokens == prompt:
                self.entries.remove(entry)
                self.entries.append(entry)
                return
        if not self.free_ids:
            self.forget(self.entries[0])
        cache_id = self.free_ids.pop()
        self.lib.llama_memory_seq_cp(self.memory, seq_id, cache_id, 0, len(prompt))
        self.entries.append(Cached(cache_id, list(prompt)))

    def forget(self, entry: Cached) -> None:
        self.lib.llama_memory_seq_rm(self.memory, entry.seq_id, -1, -1)
        self.entries.remove(entry)
        self.free_ids.append(entry.seq_id)
