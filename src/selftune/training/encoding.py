"""Turn dataset records into token ids and labels with the model's own chat template.

Only the owner's turns are trained on (assistant content and its end-of-turn token); system and
other people's turns are context with label -100. Note text is trained on whole. The same encoding
is used for training and for held-out perplexity, so the two always agree. It renders each prefix
of a conversation itself, with control tokens in the messages escaped by `guards.escape_messages`
first, exactly as `engines.base.render_chat` (every prompt at use) escapes them.
"""

from __future__ import annotations

from typing import Any

from selftune.guards import escape_messages

IGNORE = -100


def _render(tokenizer: Any, messages: list[dict[str, str]], generation_prompt: bool = False) -> str:
    return tokenizer.apply_chat_template(
        messages, tokenize=False, add_generation_prompt=generation_prompt
    )


def encode_chat(tokenizer: Any, messages: list[dict[str, str]]) -> tuple[list[int], list[int]]:
    """(input_ids, labels) for a conversation; labels are -100 except on assistant replies.

    The template is rendered for each prefix of the conversation and the new text tokenised
    piece by piece, which works for any template that renders prefixes as prefixes.
    """
    messages = escape_messages(tokenizer, messages)
    ids: list[int] = []
    labels: list[int] = []
    previous = ""
    for i, message in enumerate(messages):
        rendered = _render(tokenizer, messages[: i + 1])
        if not rendered.startswith(previous):
            raise ValueError("the chat template does not render prefixes as prefixes")
        if message["role"] == "assistant":
            header_end = _render(tokenizer, messages[:i], generation_prompt=True)
            if not (header_end.startswith(previous) and rendered.startswith(header_end)):
                header_end = previous
            header = tokenizer.encode(header_end[len(previous) :], add_special_tokens=False)
            body = tokenizer.encode(rendered[len(header_end) :], add_special_tokens=False)
            ids += header + body
            labels += [IGNORE] * len(header) + body
        else:
            piece = tokenizer.encode(rendered[len(previous) :], add_special_tokens=not ids)
            ids += piece
            labels += [IGNORE] * len(piece)
        previous = rendered
    return ids, labels


def encode_text(tokenizer: Any, text: str) -> tuple[list[int], list[int]]:
    """(input_ids, labels) for completion text: every token trained, end-of-sequence appended."""
    ids = tokenizer.encode(text, add_special_tokens=True)
    if tokenizer.eos_token_id is not None:
        ids.append(tokenizer.eos_token_id)
    return ids, list(ids)


def encode_record(tokenizer: Any, record: dict[str, Any], max_len: int) -> dict[str, list[int]]:
    """Encode one dataset record ({"messages"} or {"text"}), cut to `max_len` tokens."""
    if "messages" in record:
        ids, labels = encode_chat(tokenizer, record["messages"])
    else:
        ids, labels = encode_text(tokenizer, record["text"])
    return {"input_ids": ids[:max_len], "labels": labels[:max_len]}
