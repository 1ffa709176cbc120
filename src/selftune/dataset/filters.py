"""Quality filters for dataset examples: exact and near duplicates, and other languages.

Near duplicates are found with MinHash over word 3-grams and locality-sensitive hashing, then
confirmed by the exact Jaccard overlap, so the result does not depend on hash luck. The earliest
copy is kept; because this runs before the train/validation split, no near copy of a target can
land on both sides.
"""

from __future__ import annotations

import re
import zlib
from collections.abc import Sequence

import numpy as np

from selftune.errors import SelftuneError

WORD = re.compile(r"\w+")
NUM_HASHES = 64
BANDS = 16
MIN_WORDS_NEAR = 8  # shorter replies ("ok see you then") repeat naturally; only exact copies count
_rng = np.random.default_rng(20261123)
_A = _rng.integers(1, 2**63, NUM_HASHES, dtype=np.uint64) | np.uint64(1)
_B = _rng.integers(0, 2**63, NUM_HASHES, dtype=np.uint64)
_BAND_MIX = _rng.integers(1, 2**63, NUM_HASHES // BANDS, dtype=np.uint64) | np.uint64(1)


def shingles(text: str) -> frozenset[str]:
    words = WORD.findall(text.casefold())
    return frozenset(" ".join(words[i : i + 3]) for i in range(len(words) - 2))


def _signatures(sets: list[frozenset[str]]) -> np.ndarray:
    """MinHash signatures (len(sets) × NUM_HASHES) of non-empty shingle sets, in batches."""
    out = np.empty((len(sets), NUM_HASHES), dtype=np.uint64)
    batch = 4096
    for lo in range(0, len(sets), batch):
        part = sets[lo : lo + batch]
        hashes = np.fromiter(
            (zlib.crc32(s.encode()) for shingle_set in part for s in shingle_set),
            dtype=np.uint64,
        )
        sizes = np.fromiter((len(s) for s in part), dtype=np.int64, count=len(part))
        offsets = np.concatenate(([0], np.cumsum(sizes)[:-1]))
        with np.errstate(over="ignore"):
            mixed = (hashes[:, None] * _A[None, :] + _B[None, :]) >> np.uint64(32)
        out[lo : lo + len(part)] = np.minimum.reduceat(mixed, offsets, axis=0)
    return out


def find_duplicates(
    whole: Sequence[str], texts: Sequence[str], near: bool, threshold: float
) -> list[str | None]:
    """For each example in order: None to keep it, 'duplicate (exact)' when an earlier kept
    example is the same `whole` (ignoring case and spacing), or 'duplicate (near)' when its
    `texts` (the targets) overlap an earlier kept one's above `threshold`."""
    reasons: list[str | None] = [None] * len(texts)
    seen: set[str] = set()
    candidates: list[int] = []
    for i, text in enumerate(texts):
        key = " ".join(whole[i].casefold().split())
        if key in seen:
            reasons[i] = "duplicate (exact)"
            continue
        seen.add(key)
        if near and len(WORD.findall(text)) >= MIN_WORDS_NEAR:
            candidates.append(i)
    if not near or not candidates:
        return reasons
    sets = [shingles(texts[i]) for i in candidates]
    signatures = _signatures(sets).reshape(len(sets), BANDS, NUM_HASHES // BANDS)
    with np.errstate(over="ignore"):
        band_keys = (signatures * _BAND_MIX).sum(axis=2, dtype=np.uint64).tolist()
    # only texts sharing a band key with another text can be near copies: skip the rest
    keys = np.asarray(band_keys, dtype=np.uint64)
    shared = np.zeros(len(candidates), dtype=bool)
    for b in range(BANDS):
        _, inverse, counts = np.unique(keys[:, b], return_inverse=True, return_counts=True)
        shared |= counts[inverse] > 1
    buckets: dict[tuple[int, int], list[int]] = {}
    for pos in np.flatnonzero(shared).tolist():
        i = candidates[pos]
        bands = list(enumerate(band_keys[pos]))
        match = None
        for key in bands:
            for other in buckets.get(key, ()):
                overlap = len(sets[pos] & sets[other]) / len(sets[pos] | sets[other])
                if overlap >= threshold:
                    match = other
                    break
            if match is not None:
                break
        if match is not None:
            reasons[i] = "duplicate (near)"
            continue
        for key in bands:
            buckets.setdefault(key, []).append(pos)
    return reasons


def language_filter(languages: Sequence[str]):  # type: ignore[no-untyped-def]
    """A function text → reason or None that keeps `languages` (ISO 639-1 codes). Texts under
    40 letters are kept: language identification is guesswork on them."""
    wanted = {code.lower() for code in languages}
    try:
        import py3langid
    except ImportError as exc:
        raise SelftuneError(
            "`languages` in twin.yaml needs the language identifier: pip install 'selftune[lang]'"
        ) from exc

    def reason(text: str) -> str | None:
        if sum(c.isalpha() for c in text) < 40:
            return None
        code, _ = py3langid.classify(text)
        return None if code in wanted else "other language"

    return reason
