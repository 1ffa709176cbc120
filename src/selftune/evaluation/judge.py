"""Context fit: does a reply answer the message it follows? A judge scores it between 0 and 1.

The judge is a local model (the run's base or tuned side: the probability it gives "Yes" against
"No" when asked) or an OpenAI-compatible endpoint the owner configured (a 1–5 score, mapped to
0–1). Nothing is sent anywhere unless `eval.judge: endpoint` and `eval.judge_endpoint` are set.
Real replies are scored too, so the twin's score can be read against the owner's own.
"""

from __future__ import annotations

import re
from typing import Any

from tqdm import tqdm

from selftune.engines.base import render_chat

JUDGE_SYSTEM = "You are a careful judge of conversations. Answer only what is asked."
QUESTION = (
    "Here is the end of a chat.\n\nMessage: {message}\n\nReply: {reply}\n\n"
    "Does the reply respond sensibly to the message? Answer Yes or No."
)
ENDPOINT_QUESTION = (
    "Here is the end of a chat.\n\nMessage: {message}\n\nReply: {reply}\n\n"
    "On a scale of 1 (ignores or contradicts the message) to 5 (a natural, fitting answer), how "
    "well does the reply respond to the message? Answer with the number only."
)


def last_message(context: list[dict[str, str]]) -> str:
    users = [m["content"] for m in context if m["role"] == "user"]
    return users[-1] if users else ""


def score_local(judge: Any, message: str, reply: str) -> float:
    """P(Yes) from a local model asked whether `reply` answers `message`."""
    prompt = render_chat(
        judge.tokenizer,
        [
            {"role": "system", "content": JUDGE_SYSTEM},
            {"role": "user", "content": QUESTION.format(message=message, reply=reply)},
        ],
    )
    yes, _ = judge.option_probabilities(prompt, ["Yes", "No"])
    return yes


def score_endpoint(judge: Any, message: str, reply: str) -> float | None:
    """A 1–5 score from an endpoint, mapped to 0–1 (None when the answer has no number)."""
    question = ENDPOINT_QUESTION.format(message=message, reply=reply)
    answer = judge.chat(
        [{"role": "system", "content": JUDGE_SYSTEM}, {"role": "user", "content": question}],
        n=1,
        temperature=0,
        max_tokens=4,
    )[0]
    found = re.search(r"[1-5]", answer)
    return (int(found.group(0)) - 1) / 4 if found else None


def score_replies(judge: Any, pairs: list[tuple[str, str]], label: str) -> dict[str, Any]:
    """Mean judge score over (message, reply) pairs."""
    local = hasattr(judge, "option_probabilities")
    scores = []
    for message, reply in tqdm(pairs, desc=f"judge {label}", leave=False):
        if not message.strip():
            continue
        s = score_local(judge, message, reply) if local else score_endpoint(judge, message, reply)
        if s is not None:
            scores.append(s)
    return {
        "scored": len(scores),
        "mean": round(sum(scores) / len(scores), 4) if scores else None,
    }
