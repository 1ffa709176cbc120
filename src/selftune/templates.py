"""The pieces of a model's chat template, derived by rendering it: what wraps each role's
content, the system prompt it adds by itself, and a training copy with `{% generation %}`
markers around the assistant's turns (TRL's `assistant_only_loss`). The export's Modelfile and
the dataset's `chat_template.jinja` are both made from these, so they render as training does.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
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
    cuts = [
        one[len(one) - cut :]
        for cut in range(len(one) + 1)
        if two.startswith(one[: len(one) - cut]) and two.endswith(one[len(one) - cut :])
    ]
    # Phi-3's "<|end|>" could also be read as "end|>" after a "<|" that every turn begins
    # with: the one that cuts the text between tokens is meant
    return next((c for c in cuts if _between_tokens(tokenizer, one, len(one) - len(c))), "")


def _between_tokens(tokenizer: Any, text: str, at: int) -> bool:
    encode = getattr(tokenizer, "encode", None)
    if not callable(encode) or at in (0, len(text)):
        return True
    try:
        whole = encode(text, add_special_tokens=False)
        parts = encode(text[:at], add_special_tokens=False) + encode(
            text[at:], add_special_tokens=False
        )
    except Exception:  # noqa: BLE001 (a stand-in tokenizer in tests)
        return True
    return whole == parts


def render_open(
    tokenizer: Any, messages: list[dict[str, str]], prompt: bool = False, closing: str = ""
) -> str:
    """The template's rendering of `messages` without its closing text (see closing_text)."""
    text = tokenizer.apply_chat_template(
        messages, tokenize=False, add_generation_prompt=prompt, **template_options(tokenizer)
    )
    return text[: len(text) - len(closing)] if closing and text.endswith(closing) else text


@dataclass(frozen=True)
class ChatShape:
    """How a chat template lays out a conversation, found by rendering it.

    `wrappers`: (prefix, suffix) around each role's content ("system", "user", "assistant"),
    "last_assistant" (the reply that ends a conversation after a user turn, which some templates
    wrap otherwise) and "generation" (the generation prompt, as a prefix).
    `fold`: "" when the system message is a turn of its own; "first" or "last" when the template
    writes it inside the first user turn (Gemma) or the last one (Mistral v0.3), wrapped by
    wrappers["system"] just before the user's content. `head`: what a folding template writes
    before the first turn (its bos token). `default`: the system prompt the template adds by
    itself when a conversation brings none (None when it adds no system text; "" when it
    writes an empty one, as Llama 3.1's with its date lines).
    `prompt_only`: a "last" fold that the template writes only while that user turn ends the
    conversation (Mistral v0.3's is written for prompts: once a reply follows, the system
    message is gone). `refuses`: the template raises on a system message (Gemma 2's,
    Mixtral's), so selftune writes it into the first user turn as Gemma 3's template does,
    followed by a blank line (REFUSED_WRAP). Both are done by template_messages."""

    wrappers: dict[str, tuple[str, str]]
    fold: str = ""
    head: str = ""
    default: str | None = None
    prompt_only: bool = False
    refuses: bool = False


def chat_shape(tokenizer: Any) -> ChatShape:
    """The ChatShape of `tokenizer`'s chat template; a SelftuneError when it has none selftune
    can follow (a template that drops or refuses the system message, or puts it elsewhere)."""
    key = (type(tokenizer).__name__,) + tuple(
        str(getattr(tokenizer, k, "")) for k in ("chat_template", "bos_token", "eos_token")
    )
    if key not in _SHAPES:  # asked for every example and prompt: worked out once
        try:
            _SHAPES[key] = _chat_shape(tokenizer)
        except SelftuneError as exc:
            _SHAPES[key] = exc
        except Exception as exc:  # noqa: BLE001 (the template raised on a probe conversation)
            error = SelftuneError(f"the chat template refuses a probe conversation: {exc}")
            _SHAPES[key] = error
    found = _SHAPES[key]
    if isinstance(found, SelftuneError):
        raise found
    return found


_SHAPES: dict[tuple, ChatShape | SelftuneError] = {}
MARK = "\x00MARK\x00"
# how selftune writes the system text into the first user turn of a template that refuses a
# system message: as Gemma 3's template does (and Gemma 2's model card asks)
REFUSED_WRAP = ("", "\n\n")


def chat_wrappers(tokenizer: Any) -> dict[str, tuple[str, str]]:
    """(prefix, suffix) around each role's content, and the generation prompt, from the template
    (for a folding template, "system" wraps the system text inside the user turn)."""
    return dict(chat_shape(tokenizer).wrappers)


def default_system(tokenizer: Any) -> str:
    """The system prompt the chat template adds by itself when a conversation has none."""
    return chat_shape(tokenizer).default or ""


def _renderer(tokenizer: Any) -> Callable[..., str]:
    closing = closing_text(tokenizer)

    def render(messages: list[dict[str, str]], prompt: bool = False) -> str:
        return render_open(tokenizer, messages, prompt, "" if prompt else closing)

    return render


def _chat_shape(tokenizer: Any) -> ChatShape:
    render = _renderer(tokenizer)
    system = {"role": "system", "content": "S" + MARK}
    if _refuses_system(render):

        def folding(messages: list[dict[str, str]], prompt: bool = False) -> str:
            if messages and messages[0]["role"] == "system":
                messages = _fold(messages[1:], messages[0]["content"], "first", REFUSED_WRAP)
            return render(messages, prompt)

        shape = _folded_shape(tokenizer, folding)
        return ChatShape(shape.wrappers, shape.fold, shape.head, shape.default, refuses=True)
    try:
        sys_only = render([system])
    except Exception:  # noqa: BLE001 (a template that wants a user turn after it)
        sys_only = ""
    if "S" + MARK not in sys_only:
        return _folded_shape(tokenizer, render)
    wrappers = {"system": _split(sys_only, "S" + MARK)}
    for role in ("user", "assistant"):
        text = render([system, {"role": role, "content": "X" + MARK}])
        wrappers[role] = _split(text[len(sys_only) :], "X" + MARK)
    with_user = render([system, {"role": "user", "content": "u"}])
    prompt = render([system, {"role": "user", "content": "u"}], prompt=True)[len(with_user) :]
    wrappers["generation"] = (prompt, "")
    # the reply that ends a conversation may be wrapped otherwise (Qwen3: an empty think block)
    last = render(
        [system, {"role": "user", "content": "u"}, {"role": "assistant", "content": "X" + MARK}]
    )
    wrappers["last_assistant"] = (
        _split(last[len(with_user) :], "X" + MARK)
        if last.startswith(with_user)
        else wrappers["assistant"]
    )
    return ChatShape(wrappers, default=_default_system(tokenizer, wrappers))


def _refuses_system(render: Callable[..., str]) -> bool:
    user = {"role": "user", "content": "u"}
    try:
        render([{"role": "system", "content": "s"}, user])
    except Exception:  # noqa: BLE001 (raise_exception in the template)
        render([user])  # a template that refuses this too is no chat template to follow
        return True
    return False


def _default_system(tokenizer: Any, w: dict[str, tuple[str, str]]) -> str | None:
    bare = render_open(
        tokenizer, [{"role": "user", "content": "u"}], closing=closing_text(tokenizer)
    )
    head = bare[: -len(w["user"][0] + "u" + w["user"][1])] if bare.endswith(w["user"][1]) else ""
    prefix, suffix = w["system"]
    if head.startswith(prefix) and head.endswith(suffix) and len(head) >= len(prefix + suffix):
        return head[len(prefix) : len(head) - len(suffix)]
    return None


def _folded_shape(tokenizer: Any, render: Callable[..., str]) -> ChatShape:
    """A template that writes the system message inside a user turn: each wrapper read off a
    rendering of system, user, assistant, user (one user turn holds the system text, the other
    is plain), then checked by rendering probe conversations both ways."""
    s, u, a, x = ("S" + MARK, "U" + MARK, "A" + MARK, "X" + MARK)
    system, user, reply, later = (
        {"role": "system", "content": s}, {"role": "user", "content": u},
        {"role": "assistant", "content": a}, {"role": "user", "content": x},
    )  # fmt: skip
    two = render([system, user, reply, later])
    if s not in two or not all(m in two for m in (u, a, x)):
        raise SelftuneError("the chat template drops the system message; cannot derive its shape")
    fold = "first" if two.index(s) < two.index(u) else "last"
    user_suffix = two.split(x, 1)[1]
    last = render([system, user, reply])
    between, last_suffix = _split(last.split(u, 1)[1], a)
    if not between.startswith(user_suffix):
        raise SelftuneError("the chat template renders an assistant turn otherwise")
    last_assistant = (between[len(user_suffix) :], last_suffix)
    if fold == "first":  # head user-prefix sp S ss U us ap A as user-prefix X us
        before, rest = two.split(s, 1)
        inner, rest = rest.split(u, 1)
        turn, rest = rest.split(a, 1)
        gap = rest.split(x, 1)[0]
    else:  # head user-prefix U us ap A as user-prefix sp S ss X us
        before, rest = two.split(u, 1)
        turn, rest = rest.split(a, 1)
        gap, rest = rest.split(s, 1)
        inner = rest.split(x, 1)[0]
    if not (turn.startswith(user_suffix) and gap.startswith(last_suffix)):
        raise SelftuneError("the chat template renders a later turn otherwise")
    assistant = (turn[len(user_suffix) :], last_suffix)
    gap = gap[len(last_suffix) :]  # the user prefix, and for "last" the system text's prefix
    if fold == "first":
        at = before.find(gap)
        head, wrap = before[: max(at, 0)], (before[at + len(gap) :], inner)
        prefix = gap
    else:
        prefix = next((gap[:n] for n in range(len(gap), 0, -1) if before.endswith(gap[:n])), "")
        head, wrap = before[: len(before) - len(prefix)], (gap[len(prefix) :], inner)
    if fold == "first" and at < 0 or not prefix:
        raise SelftuneError("the chat template renders the first user turn otherwise")
    wrappers = {"system": wrap, "user": (prefix, user_suffix), "assistant": assistant,
                "last_assistant": last_assistant}  # fmt: skip
    with_user = render([system, user])
    wrappers["generation"] = (render([system, user], prompt=True)[len(with_user) :], "")
    bare = render([user])
    plain = head + prefix + u + user_suffix
    default = None
    if bare != plain:
        start, end = head + prefix + wrap[0], wrap[1] + u + user_suffix
        if not (bare.startswith(start) and bare.endswith(end)):
            raise SelftuneError("the chat template renders a lone user turn otherwise")
        default = bare[len(start) : len(bare) - len(end)]
    shape = ChatShape(wrappers, fold, head, default, prompt_only=fold == "last" and s not in last)
    for probe in ([system, user], [system, user, reply], [system, user, reply, later], [user],
                  [user, reply, later]):  # fmt: skip
        for prompt in (False, True) if probe[-1]["role"] == "user" else (False,):
            if _render_folded(shape, probe, prompt) != render(
                template_messages(tokenizer, probe, shape), prompt
            ):
                raise SelftuneError("the chat template folds the system message otherwise")
    return shape


def _render_folded(shape: ChatShape, messages: list[dict[str, str]], prompt: bool) -> str:
    """What a folding template renders for `messages`, from its shape (a check on it)."""
    w = shape.wrappers
    system, has = shape.default or "", shape.default is not None
    if messages and messages[0]["role"] == "system":
        system, has, messages = messages[0]["content"], True, messages[1:]
    if has:
        messages = _fold(messages, system, shape.fold, w["system"])
    text = shape.head
    for i, m in enumerate(messages):
        role = (
            "last_assistant" if m["role"] == "assistant" and i == len(messages) - 1 else m["role"]
        )
        text += w[role][0] + m["content"] + w[role][1]
    return text + (w["generation"][0] if prompt else "")


def _fold(
    messages: list[dict[str, str]], system: str, fold: str, wrap: tuple[str, str]
) -> list[dict[str, str]]:
    """`messages` (no system message) with `system` written into the first or last user turn."""
    users = [i for i, m in enumerate(messages) if m["role"] == "user"]
    if not users:
        return messages
    at = users[0] if fold == "first" else users[-1]
    folded = dict(messages[at], content=wrap[0] + system + wrap[1] + messages[at]["content"])
    return [*messages[:at], folded, *messages[at + 1 :]]


def template_messages(
    tokenizer: Any, messages: list[dict[str, str]], shape: ChatShape | None = None
) -> list[dict[str, str]]:
    """The conversation as `tokenizer`'s template is given it, for training and for prompts
    alike: as it is, except for a template that refuses a system message (its text goes into
    the first user turn, REFUSED_WRAP) and one that writes it into the last user turn only while
    that turn ends the conversation (Mistral v0.3's, written for prompts): with the replies that
    follow it in training, the system message would vanish, so it is written into the last user
    turn, where the prompt `serve` gives has it."""
    if not messages or messages[0]["role"] != "system":
        return messages
    try:
        shape = shape or chat_shape(tokenizer)
    except SelftuneError:
        return messages
    system, rest = messages[0]["content"], messages[1:]
    if shape.refuses:
        return _fold(rest, system, "first", shape.wrappers["system"])
    if shape.prompt_only and messages[-1]["role"] != "user":
        return _fold(rest, system, "last", shape.wrappers["system"])
    return messages


def _split(text: str, content: str) -> tuple[str, str]:
    if content not in text:
        raise SelftuneError("the chat template drops message content; cannot derive a Modelfile")
    before, after = text.split(content, 1)
    return before, after


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
    shape = chat_shape(tokenizer)
    w = shape.wrappers
    fallback = shape.default if system is None else system

    def turn(prefix: str, suffix: str, role: str) -> str:
        content = "{{ message['content'] }}"
        if role == "assistant" and marks:
            return (
                _lit(prefix) + "{% generation %}" + content + _lit(suffix) + "{% endgeneration %}"
            )
        return _lit(prefix) + content + _lit(suffix)

    def reply() -> str:
        if w["last_assistant"] == w["assistant"]:
            return turn(*w["assistant"], "assistant")
        # as the base's: the reply that ends a conversation after a user turn
        after_user = "(messages | selectattr('role', 'equalto', 'user') | list)"
        return (
            f"{{%- if loop.last and {after_user} %}}" + turn(*w["last_assistant"], "assistant")
            + "{%- else %}" + turn(*w["assistant"], "assistant") + "{%- endif %}"
        )  # fmt: skip

    if shape.fold:
        return _folded_template(shape, fallback, turn, reply) + _generation_prompt(tokenizer, w)
    parts = []
    if fallback is not None:
        parts.append(
            "{%- if not messages or messages[0]['role'] != 'system' %}"
            + _lit(w["system"][0] + fallback + w["system"][1])
            + "{%- endif %}"
        )
    parts.append("{%- for message in messages %}")
    parts.append("{%- if message['role'] == 'system' %}" + turn(*w["system"], "system"))
    parts.append("{%- elif message['role'] == 'user' %}" + turn(*w["user"], "user"))
    parts.append("{%- elif message['role'] == 'assistant' %}" + reply())
    parts.append("{%- endif %}{%- endfor %}")
    return "".join(parts) + _generation_prompt(tokenizer, w)


def _folded_template(
    shape: ChatShape, fallback: str | None, turn: Callable[..., str], reply: Callable[[], str]
) -> str:
    """generation_template for a template that writes the system text into a user turn: the
    first one, or the last one (also when replies follow it, as training renders: see
    template_messages). A later system message has no place in such a template: left out."""
    w = shape.wrappers
    pick = "ns.at < 0" if shape.fold == "first" else "true"
    parts = [
        "{%- set ns = namespace(system=" + json.dumps(fallback or "", ensure_ascii=False)
        + ", has=" + ("false" if fallback is None else "true") + ", at=-1) %}",
        "{%- for message in messages %}",
        "{%- if loop.first and message['role'] == 'system' %}"
        "{%- set ns.system = message['content'] %}{%- set ns.has = true %}",
        "{%- elif message['role'] == 'user' and " + pick + " %}{%- set ns.at = loop.index0 %}",
        "{%- endif %}{%- endfor %}",
        _lit(shape.head),
        "{%- for message in messages %}{%- if message['role'] == 'user' %}" + _lit(w["user"][0]),
        "{%- if loop.index0 == ns.at and ns.has %}" + _lit(w["system"][0])
        + "{{ ns.system }}" + _lit(w["system"][1]) + "{%- endif %}",
        "{{ message['content'] }}" + _lit(w["user"][1]),
        "{%- elif message['role'] == 'assistant' %}" + reply(),
        "{%- endif %}{%- endfor %}",
    ]  # fmt: skip
    return "".join(parts)


def _generation_prompt(tokenizer: Any, w: dict[str, tuple[str, str]]) -> str:
    closing = closing_text(tokenizer)
    end = ("{%- else %}" + _lit(closing) if closing else "") + "{%- endif %}"
    return "{%- if add_generation_prompt %}" + _lit(w["generation"][0]) + end + "\n"


def _lit(text: str) -> str:  # a Jinja string literal
    return "{{ " + json.dumps(text, ensure_ascii=False) + " }}"
