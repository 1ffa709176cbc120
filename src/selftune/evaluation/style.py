"""Style statistics of a set of replies, and a distance between two sets that a person can read.

Each statistic is interpretable on its own (words per reply, share of replies ending with a full
stop, emoji per reply, share starting with a capital, ...). The distance between generated and
real replies is the mean, over statistics, of the absolute difference divided by the spread of
that statistic among the owner's real replies (a z-score), plus the function-word profile as a
Burrows' Delta (mean z-scored difference of function-word frequencies, the classic stylometric
distance). 0 means indistinguishable on these statistics; base and tuned can be compared directly.
"""

from __future__ import annotations

import functools
import re
import statistics
from collections import Counter
from typing import Any

import emoji

WORD = re.compile(r"[^\W\d_]+(?:'[^\W\d_]+)?", re.UNICODE)
FUNCTION_WORDS = (  # noqa: SIM905
    "the a an and but or so of to in on at for with from by about as into than then "
    "i you he she it we they me him her us them my your our their this that these those "
    "is are was were be been am do does did have has had will would can could should "
    "not no yes just very really too also if when what which who how there here all some"
).split()
MIN_LANGUAGE_CONFIDENCE = 0.5  # below this py3langid's guess on a short line is noise
# per-reply statistics: name -> (what it means, function of the text)
STATS: dict[str, tuple[str, Any]] = {
    "words": ("words per reply", lambda t: len(WORD.findall(t))),
    "chars": ("characters per reply", len),
    "word_length": ("mean word length", lambda t: _mean([len(w) for w in WORD.findall(t)])),
    "lines": ("lines per reply", lambda t: t.count("\n") + 1),
    "ends_with_stop": ("share ending with . ! or ?", lambda t: float(t.rstrip()[-1:] in ".!?")),
    "questions": ("question marks per reply", lambda t: t.count("?")),
    "exclamations": ("exclamation marks per reply", lambda t: t.count("!")),
    "commas": ("commas per 10 words", lambda t: 10 * t.count(",") / max(1, len(WORD.findall(t)))),
    "dashes": ("dashes (— – -) per reply", lambda t: len(re.findall(r"[—–]| - ", t))),
    "emoji": ("emoji per reply", lambda t: emoji.emoji_count(t)),
    "starts_upper": ("share starting with a capital", lambda t: float(t.lstrip()[:1].isupper())),
    "upper_share": (
        "share of letters in capitals",
        lambda t: sum(c.isupper() for c in t) / max(1, sum(c.isalpha() for c in t)),
    ),
    "lowercase_i": ("share using a lowercase ' i '", lambda t: float(bool(re.search(r"\bi\b", t)))),
}


def _mean(values: list[float]) -> float:
    return sum(values) / len(values) if values else 0.0


def language(text: str) -> str:
    """The language of `text` by py3langid (ISO 639-1), or '?' when it is not confident.

    On the bundled example's 610 chat lines it names 534 (the function-word heuristic it
    replaced named 349)."""
    if not WORD.search(text):
        return "?"
    code, confidence = _identifier().classify(text)
    return code if confidence >= MIN_LANGUAGE_CONFIDENCE else "?"


@functools.cache
def _identifier() -> Any:
    from py3langid.langid import MODEL_FILE, LanguageIdentifier

    return LanguageIdentifier.from_model_file(MODEL_FILE, norm_probs=True)


def function_word_profile(texts: list[str]) -> dict[str, float]:
    """Frequency of each function word per 100 words over all `texts`."""
    words = [w.lower() for t in texts for w in WORD.findall(t)]
    counts = Counter(w for w in words if w in FUNCTION_WORDS)
    total = max(1, len(words))
    return {w: 100 * counts[w] / total for w in FUNCTION_WORDS}


def vocabulary(texts: list[str]) -> set[str]:
    return {w.lower() for t in texts for w in WORD.findall(t)}


def profile(texts: list[str]) -> dict[str, Any]:
    """Mean of each statistic over `texts`, with languages and the function-word profile."""
    texts = [t for t in texts if t.strip()]
    per_text = {name: [float(fn(t)) for t in texts] for name, (_, fn) in STATS.items()}
    langs = Counter(language(t) for t in texts)
    return {
        "replies": len(texts),
        "stats": {name: round(_mean(v), 4) for name, v in per_text.items()},
        "languages": dict(langs.most_common()),
        "function_words": function_word_profile(texts),
    }


def _spread(values: list[float]) -> float:
    return statistics.pstdev(values) if len(values) > 1 else 0.0


def distance(generated: list[str], real: list[str], reference: list[str]) -> dict[str, Any]:
    """How far `generated` is from `real` replies, in units of the spread of the owner's replies
    (`reference`: the owner's messages, e.g. the training side, which sets the scale)."""
    generated = [t for t in generated if t.strip()]
    real = [t for t in real if t.strip()]
    reference = [t for t in reference if t.strip()] or real
    if not generated or not real:
        return {"distance": None, "per_stat": {}, "function_words": None, "vocab_overlap": None}
    per_stat = {}
    for name, (_, fn) in STATS.items():
        g = _mean([float(fn(t)) for t in generated])
        r = _mean([float(fn(t)) for t in real])
        scale = _spread([float(fn(t)) for t in reference]) or 1.0
        per_stat[name] = round(abs(g - r) / scale, 4)
    delta = burrows_delta(generated, real, reference)
    lang_gen, lang_real = Counter(map(language, generated)), Counter(map(language, real))
    lang_diff = 0.5 * sum(
        abs(lang_gen[k] / len(generated) - lang_real[k] / len(real))
        for k in set(lang_gen) | set(lang_real)
    )
    own_vocab = vocabulary(reference + real)
    gen_words = [w.lower() for t in generated for w in WORD.findall(t)]
    overlap = sum(w in own_vocab for w in gen_words) / max(1, len(gen_words))
    parts = [*per_stat.values(), delta, 2 * lang_diff]
    return {
        "distance": round(_mean(parts), 4),
        "per_stat": per_stat,
        "function_words": round(delta, 4),
        "language_mismatch": round(lang_diff, 4),
        "vocab_overlap": round(overlap, 4),
    }


def burrows_delta(texts_a: list[str], texts_b: list[str], reference: list[str]) -> float:
    """Burrows' Delta between two sets: mean |z_a - z_b| over function words, z-scored by the
    spread of each word's frequency across the reference texts."""
    prof_a, prof_b = function_word_profile(texts_a), function_word_profile(texts_b)
    chunks = _chunks(reference, 8)
    spreads = {}
    if len(chunks) > 1:
        per_chunk = [function_word_profile(c) for c in chunks]
        spreads = {w: _spread([p[w] for p in per_chunk]) for w in FUNCTION_WORDS}
    used = [w for w in FUNCTION_WORDS if prof_a[w] or prof_b[w]]
    if not used:
        return 0.0
    return sum(abs(prof_a[w] - prof_b[w]) / (spreads.get(w) or 1.0) for w in used) / len(used)


def _chunks(texts: list[str], size: int) -> list[list[str]]:
    return [texts[i : i + size] for i in range(0, len(texts), size) if len(texts[i : i + size])]


def closer(base: dict[str, Any], tuned: dict[str, Any]) -> bool | None:
    """Whether the tuned model's style is closer to the owner than the base's (None: unknown)."""
    if base.get("distance") is None or tuned.get("distance") is None:
        return None
    return tuned["distance"] < base["distance"]
