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
from selftune.templates import closing_text, render_open, template_messages

IGNORE = -100


def _render(tokenizer: Any, messages: list[dict[str, str]], generation_prompt: bool = False) -> str:
    # without the text some templates append after every conversation (Phi-3's eos_token)
    closing = "" if generation_prompt else closing_text(tokenizer)
    return render_open(tokenizer, messages, generation_prompt, closing)


def encode_chat(tokenizer: Any, messages: list[dict[str, str]]) -> tuple[list[int], list[int]]:
    """(input_ids, labels) for a conversation; labels are -100 except on assistant replies.

    The template is rendered for each prefix of the conversation and the new text tokenised
    piece by piece, which works for any template that renders prefixes as prefixes. The
    messages are given to the template as `render_chat` gives them (templates.template_messages:
    the system message written into a user turn where the template refuses it or would drop it).
    """
    messages = template_messages(tokenizer, escape_messages(tokenizer, messages))
    ids: list[int] = []
    labels: list[int] = []
    previous = ""
    for i, message in enumerate(messages):
        rendered = _render(tokenizer, messages[: i + 1])
        if not rendered.startswith(previous):  # e.g. Qwen3's last assistant turn
            return _encode_whole(tokenizer, messages)
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


def _encode_whole(tokenizer: Any, messages: list[dict[str, str]]) -> tuple[list[int], list[int]]:
    """For templates whose turns render differently once the conversation goes on: the whole
    conversation rendered once, and in it each assistant reply (found after the next assistant
    header) with the end-of-turn text after it trained."""
    from selftune.errors import SelftuneError
    from selftune.templates import chat_wrappers

    full = _render(tokenizer, messages)
    try:
        header, end = chat_wrappers(tokenizer)["assistant"]
    except SelftuneError:  # a template selftune cannot take apart: search the text
        header, end = "", tokenizer.eos_token or ""
    ids: list[int] = []
    labels: list[int] = []
    cursor = 0
    for message in messages:
        if message["role"] != "assistant":
            continue
        turn = full.find(header, cursor) if header else cursor
        start = full.find(message["content"], max(turn, cursor) + len(header))
        if turn < 0 or start < 0:
            raise ValueError("the chat template does not render an assistant reply as it is")
        stop = start + len(message["content"])
        if end and full.startswith(end, stop):
            stop += len(end)
        context = tokenizer.encode(full[cursor:start], add_special_tokens=not ids)
        body = tokenizer.encode(full[start:stop], add_special_tokens=False)
        ids += context + body
        labels += [IGNORE] * len(context) + body
        cursor = stop
    rest = tokenizer.encode(full[cursor:], add_special_tokens=False) if cursor < len(full) else []
    return ids + rest, labels + [IGNORE] * len(rest)


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
