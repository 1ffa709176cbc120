"""An Ollama Modelfile for an exported GGUF: its TEMPLATE and stop tokens are derived from the
training chat template and its SYSTEM is the twin's prompt, so Ollama prompts the model exactly
as it was trained, with or without a system message."""

from __future__ import annotations

import json
from typing import Any

from selftune.errors import SelftuneError
from selftune.templates import chat_wrappers, default_system

# the Modelfile's FROM: f16 gives the trained model's own greedy text; q8_0 is half the size but
# drifts (measured on the embedded model: docs/serving.md)
MODELFILE_PREFERENCE = ("f16", "f32", "q8_0")


def modelfile(
    tokenizer: Any, gguf_name: str, system: str | None = None, others: list[str] | None = None
) -> str:
    """An Ollama Modelfile whose TEMPLATE renders conversations as the training chat template.

    Ollama puts SYSTEM first when the request brings no system message; the template's own
    branch does the same when SYSTEM is empty too, so no path renders the base's stock prompt.
    A template that cannot be taken apart (the system message inside a user turn: Mistral,
    Gemma) gets no TEMPLATE: Ollama then uses its own for the GGUF's embedded template."""
    try:
        w = chat_wrappers(tokenizer)
    except SelftuneError as exc:
        return _without_template(tokenizer, gguf_name, system, str(exc))
    fallback = system if system is not None else default_system(tokenizer)

    def esc(s: str) -> str:
        return s.replace("\\", "\\\\").replace('"', '\\"')

    def go_literal(s: str) -> str:  # a Go template string constant (json.dumps is one)
        return json.dumps(s, ensure_ascii=False)

    no_system = '{{- if or (not .Messages) (ne (index .Messages 0).Role "system") }}'
    template = (
        no_system + w["system"][0]
        + "{{ if .System }}{{ .System }}{{ else }}{{ " + go_literal(fallback) + " }}{{ end }}"
        + w["system"][1] + "{{ end }}"
        + "{{- range .Messages }}"
        '{{ if eq .Role "system" }}' + w["system"][0] + "{{ .Content }}" + w["system"][1]
        + '{{ else if eq .Role "user" }}' + w["user"][0] + "{{ .Content }}" + w["user"][1]
        + '{{ else if eq .Role "assistant" }}' + w["assistant"][0] + "{{ .Content }}"
        + w["assistant"][1] + "{{ end }}{{ end }}" + w["generation"][0]
    )  # fmt: skip
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


def stop_strings(tokenizer: Any) -> list[str]:
    """The end-of-turn token the model was trained to emit, and the start of a new turn."""
    w = chat_wrappers(tokenizer)
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
