"""An Ollama Modelfile for an exported GGUF: its TEMPLATE and stop tokens are derived from the
training chat template and its SYSTEM is the twin's prompt, so Ollama prompts the model exactly
as it was trained, with or without a system message."""

from __future__ import annotations

import json
from typing import Any

from selftune.errors import SelftuneError
from selftune.templates import ChatShape, chat_shape

# the Modelfile's FROM: f16 gives the trained model's own greedy text; q8_0 is half the size but
# drifts (measured on the embedded model: docs/serving.md)
MODELFILE_PREFERENCE = ("f16", "f32", "q8_0")


def modelfile(
    tokenizer: Any, gguf_name: str, system: str | None = None, others: list[str] | None = None
) -> str:
    """An Ollama Modelfile whose TEMPLATE renders conversations as the training chat template.

    Ollama puts SYSTEM first when the request brings no system message; the template's own
    branch does the same when SYSTEM is empty too, so no path renders the base's stock prompt.
    A template that writes the system message into a user turn (Gemma, Mistral) gets a TEMPLATE
    that does the same. One that cannot be taken apart gets none: Ollama then uses its own for
    the GGUF's embedded template."""
    try:
        shape = chat_shape(tokenizer)
    except SelftuneError as exc:
        return _without_template(tokenizer, gguf_name, system, str(exc))
    w = shape.wrappers
    fallback = system if system is not None else shape.default

    def esc(s: str) -> str:
        return s.replace("\\", "\\\\").replace('"', '\\"')

    template = _folded_template(shape, fallback) if shape.fold else _turns_template(w, fallback)
    stops = stop_strings(tokenizer)
    lines = [
        "# The twin, prompted as in training: TEMPLATE is its chat template, SYSTEM its prompt.",
        f"# {gguf_name.removeprefix('model-').removesuffix('.gguf')} weights give the trained "
        "model's own text"
        + (f"; FROM ./model-{others[0]}.gguf is smaller and faster but drifts" if others else ""),
        f"FROM ./{gguf_name}",
    ]
    if system is not None:
        lines.append(f'SYSTEM """{system}"""')
    lines.append(f'TEMPLATE """{template}"""')
    lines += [f'PARAMETER stop "{esc(s)}"' for s in stops]
    lines += ["PARAMETER temperature 0.8", "PARAMETER top_p 0.95", ""]
    return "\n".join(lines)


def _go_literal(s: str) -> str:  # a Go template string constant (json.dumps is one)
    return json.dumps(s, ensure_ascii=False)


def _turns_template(w: dict[str, tuple[str, str]], fallback: str | None) -> str:
    """The system message as a turn of its own: SYSTEM's (else `fallback`, if any) when the
    conversation brings none."""
    no_system = '{{- if or (not .Messages) (ne (index .Messages 0).Role "system") }}'
    own = w["system"][0] + "{{ .System }}" + w["system"][1]
    if fallback is None:  # the template writes no system text of its own
        first = no_system + "{{ if .System }}" + own + "{{ end }}{{ end }}"
    else:
        first = (
            no_system + "{{ if .System }}" + own + "{{ else }}"
            + w["system"][0] + "{{ " + _go_literal(fallback) + " }}" + w["system"][1]
            + "{{ end }}{{ end }}"
        )  # fmt: skip
    template = (
        first
        + "{{- range .Messages }}"
        '{{ if eq .Role "system" }}' + w["system"][0] + "{{ .Content }}" + w["system"][1]
        + '{{ else if eq .Role "user" }}' + w["user"][0] + "{{ .Content }}" + w["user"][1]
        + '{{ else if eq .Role "assistant" }}' + w["assistant"][0] + "{{ .Content }}"
        + w["assistant"][1] + "{{ end }}{{ end }}" + w["generation"][0]
    )  # fmt: skip
    return template


def _folded_template(shape: ChatShape, fallback: str | None) -> str:
    """The system text written into the first or last user turn, as the template does: the
    conversation's system message, else SYSTEM, else `fallback`. Ollama puts SYSTEM first as a
    system message when the request brings none; a later system message has no place here."""
    w = shape.wrappers
    pick = "(lt $at 0)" if shape.fold == "first" else "true"
    has = "false" if fallback is None else "true"
    return (
        "{{- $system := " + _go_literal(fallback or "") + " }}{{- $has := " + has + " }}"
        "{{- if .System }}{{ $system = .System }}{{ $has = true }}{{ end }}{{- $at := -1 }}"
        "{{- range $i, $m := .Messages }}"
        '{{- if and (eq $i 0) (eq $m.Role "system") }}{{ $system = $m.Content }}{{ $has = true }}'
        '{{- else if and (eq $m.Role "user") ' + pick + " }}{{ $at = $i }}{{ end }}{{ end }}"
        + shape.head + "{{- range $i, $m := .Messages }}"
        '{{- if eq $m.Role "user" }}' + w["user"][0]
        + "{{ if and (eq $i $at) $has }}" + w["system"][0] + "{{ $system }}" + w["system"][1]
        + "{{ end }}{{ $m.Content }}" + w["user"][1]
        + '{{ else if eq $m.Role "assistant" }}' + w["assistant"][0] + "{{ $m.Content }}"
        + w["assistant"][1] + "{{ end }}{{ end }}" + w["generation"][0]
    )  # fmt: skip


def stop_strings(tokenizer: Any) -> list[str]:
    """The end-of-turn token the model was trained to emit, and the start of a new turn."""
    w = chat_shape(tokenizer).wrappers
    stops = []
    end = w["assistant"][1].strip()
    if end:
        stops.append(end)
    if tokenizer.eos_token and tokenizer.eos_token not in stops:
        stops.append(tokenizer.eos_token)
    start = w["user"][0].strip().split("\n")[0].split("user")[0]
    if start and start not in stops:
        stops.append(start)
    return stops


def _without_template(tokenizer: Any, gguf_name: str, system: str | None, why: str) -> str:
    lines = [
        "# The twin without a TEMPLATE: Ollama renders the GGUF's own chat template, since this",
        f"# one could not be taken apart ({why}).",
        f"FROM ./{gguf_name}",
    ]
    if system is not None:
        lines.append(f'SYSTEM """{system}"""')
    if tokenizer.eos_token:
        escaped = tokenizer.eos_token.replace("\\", "\\\\").replace('"', '\\"')
        lines.append(f'PARAMETER stop "{escaped}"')
    lines += ["PARAMETER temperature 0.8", "PARAMETER top_p 0.95", ""]
    return "\n".join(lines)
