"""The pieces of a model's chat template, derived by rendering it: what wraps each role's
content, the system prompt it adds by itself, and a training copy with `{% generation %}`
markers around the assistant's turns (TRL's `assistant_only_loss`). The export's Modelfile and
the dataset's `chat_template.jinja` are both made from these, so they render as training does.
"""

from __future__ import annotations

import json
from typing import Any

from selftune.errors import SelftuneError

# every rendering of a chat template passes these (a template that does not know one ignores
# it): the twin writes its reply, it does not reason first, so Qwen3's templates put their empty
# <think></think> block in the generation prompt, as in the reply it is trained on
TEMPLATE_OPTIONS = {"enable_thinking": False}


def template_options(tokenizer: Any) -> dict[str, Any]:
    """The TEMPLATE_OPTIONS `tokenizer`'s chat template reads (none for most)."""
    template = getattr(tokenizer, "chat_template", None)
    template = template if isinstance(template, str) else ""
    return {k: v for k, v in TEMPLATE_OPTIONS.items() if k in template}


def closing_text(tokenizer: Any) -> str:
    """What the template appends after a conversation that ends without a generation prompt
    (Phi-3's appends its eos_token), "" for most. Cut off, every prefix of a conversation renders
    as a prefix of the whole, which training and the role wrappers rely on."""
    key = tuple(str(getattr(tokenizer, k, "")) for k in ("chat_template", "bos_token", "eos_token"))
    if key not in _CLOSING:  # asked for every rendering while encoding: worked out once
        _CLOSING[key] = _closing_text(tokenizer)
    return _CLOSING[key]


_CLOSING: dict[tuple, str] = {}


def _closing_text(tokenizer: Any) -> str:
    user = [{"role": "user", "content": "u"}]
    one = tokenizer.apply_chat_template(user, tokenize=False, **template_options(tokenizer))
    two = tokenizer.apply_chat_template(
        [*user, {"role": "assistant", "content": "a"}],
        tokenize=False,
        **template_options(tokenizer),
    )
    for cut in range(len(one) + 1):
        if two.startswith(one[: len(one) - cut]) and two.endswith(one[len(one) - cut :]):
            return one[len(one) - cut :]
    return ""


def render_open(
    tokenizer: Any, messages: list[dict[str, str]], prompt: bool = False, closing: str = ""
) -> str:
    """The template's rendering of `messages` without its closing text (see closing_text)."""
    text = tokenizer.apply_chat_template(
        messages, tokenize=False, add_generation_prompt=prompt, **template_options(tokenizer)
    )
    return text[: len(text) - len(closing)] if closing and text.endswith(closing) else text


def chat_wrappers(tokenizer: Any) -> dict[str, tuple[str, str]]:
    """(prefix, suffix) around each role's content, and the generation prompt, from the template."""
    mark = "\x00MARK\x00"
    system = {"role": "system", "content": "S" + mark}
    closing = closing_text(tokenizer)

    def render(messages: list[dict[str, str]], prompt: bool = False) -> str:
        return render_open(tokenizer, messages, prompt, "" if prompt else closing)

    sys_only = render([system])
    wrappers = {"system": _split(sys_only, "S" + mark)}
    for role in ("user", "assistant"):
        text = render([system, {"role": role, "content": "X" + mark}])
        wrappers[role] = _split(text[len(sys_only) :], "X" + mark)
    with_user = render([system, {"role": "user", "content": "u"}])
    prompt = render([system, {"role": "user", "content": "u"}], prompt=True)[len(with_user) :]
    wrappers["generation"] = (prompt, "")
    # the reply that ends a conversation may be wrapped otherwise (Qwen3: an empty think block)
    last = render(
        [system, {"role": "user", "content": "u"}, {"role": "assistant", "content": "X" + mark}]
    )
    wrappers["last_assistant"] = (
        _split(last[len(with_user) :], "X" + mark)
        if last.startswith(with_user)
        else wrappers["assistant"]
    )
    return wrappers


def _split(text: str, content: str) -> tuple[str, str]:
    if content not in text:
        raise SelftuneError("the chat template drops message content; cannot derive a Modelfile")
    before, after = text.split(content, 1)
    return before, after


def default_system(tokenizer: Any) -> str:
    """The system prompt the chat template adds by itself when a conversation has none."""
    w = chat_wrappers(tokenizer)
    bare = render_open(
        tokenizer, [{"role": "user", "content": "u"}], closing=closing_text(tokenizer)
    )
    head = bare[: -len(w["user"][0] + "u" + w["user"][1])] if bare.endswith(w["user"][1]) else ""
    prefix, suffix = w["system"]
    if head.startswith(prefix) and head.endswith(suffix) and len(head) >= len(prefix + suffix):
        return head[len(prefix) : len(head) - len(suffix)]
    return ""


def twin_template(tokenizer: Any, system: str) -> str:
    """`tokenizer`'s chat template with `system` (the twin's prompt) as the system message of a
    conversation that brings none, instead of the base's stock one: what exports carry, so the
    tools that load them prompt the twin as `serve` does."""
    return generation_template(tokenizer, system, marks=False)


def generation_template(tokenizer: Any, system: str | None = None, marks: bool = True) -> str:
    """A Jinja chat template that renders every conversation as `tokenizer`'s own template does,
    with `{% generation %}` … `{% endgeneration %}` around each assistant reply and its
    end-of-turn text — exactly the tokens `selftune train` computes the loss on. `system`
    replaces the template's own default system prompt; `marks=False` leaves the markers out."""
    w = chat_wrappers(tokenizer)

    def lit(text: str) -> str:  # a Jinja string literal
        return "{{ " + json.dumps(text, ensure_ascii=False) + " }}"

    fallback = default_system(tokenizer) if system is None else system
    parts = []
    if fallback:
        parts.append(
            "{%- if not messages or messages[0]['role'] != 'system' %}"
            + lit(w["system"][0] + fallback + w["system"][1])
            + "{%- endif %}"
        )
    parts.append("{%- for message in messages %}")

    def turn(prefix: str, suffix: str, role: str) -> str:
        content = "{{ message['content'] }}"
        if role == "assistant" and marks:
            return lit(prefix) + "{% generation %}" + content + lit(suffix) + "{% endgeneration %}"
        return lit(prefix) + content + lit(suffix)

    for i, role in enumerate(("system", "user", "assistant")):
        parts.append(("{%- if" if i == 0 else "{%- elif") + f" message['role'] == '{role}' %}}")
        if role == "assistant" and w["last_assistant"] != w["assistant"]:
            # as the base's: the reply that ends a conversation after a user turn
            after_user = "(messages | selectattr('role', 'equalto', 'user') | list)"
            parts.append(
                f"{{%- if loop.last and {after_user} %}}" + turn(*w["last_assistant"], role)
            )
            parts.append("{%- else %}" + turn(*w[role], role) + "{%- endif %}")
        else:
            parts.append(turn(*w[role], role))
    parts.append("{%- endif %}{%- endfor %}")
    closing = closing_text(tokenizer)
    parts.append("{%- if add_generation_prompt %}" + lit(w["generation"][0]))
    parts.append(("{%- else %}" + lit(closing) if closing else "") + "{%- endif %}")
    return "".join(parts) + "\n"
