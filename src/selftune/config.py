"""Typed settings for a twin: each field is a `twin.yaml` key, documented once, checked in one place.

`twin.yaml` is written from these classes with every field's help as a comment, so the file a user
edits always says what each setting does. Command-line flags override the same fields.
"""

from __future__ import annotations

import ipaddress
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from selftune.errors import ConfigError


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class BuildConfig(Section):
    session_gap_minutes: float = Field(
        60,
        gt=0,
        description="A silence longer than this starts a new chat session (a day or more always does).",
    )
    max_context_turns: int = Field(
        16, ge=1, description="Most turns (yours and others') in one training example."
    )
    max_example_tokens: int = Field(
        768, ge=64, description="Longest training example in tokens; longer sessions are split."
    )
    max_turn_tokens: int = Field(
        384,
        ge=16,
        description="A turn of yours longer than this is left out (too long); others' are cut.",
    )
    min_target_chars: int = Field(
        1, ge=0, description="Examples whose replies of yours are shorter than this are left out."
    )
    speaker_names: Literal["names", "pseudonyms"] = Field(
        "names",
        description="How other people appear in group chats: their names, or 'Person 1', 'Person 2'…",
    )
    prompt_date: bool = Field(
        True, description="Say the month in the system prompt ('It is March 2019')."
    )
    system_prompt: str = Field(
        "You are {owner}. You are chatting on {platform} in '{conversation}'. Reply as {owner} would.",
        description="System prompt of chat examples; {owner}, {platform}, {conversation} are filled in.",
    )
    start_with_user: bool = Field(
        False,
        description="Begin every chat example at a user turn (strict chat templates, "
        "LLaMA-Factory): your opening turns before anyone else speaks are cut from it.",
    )
    include_notes: bool = Field(True, description="Train on notes as completion text.")
    note_chunk_tokens: int = Field(512, ge=32, description="Longest note chunk in tokens.")
    min_note_tokens: int = Field(
        8, ge=0, description="Note chunks shorter than this (in tokens) are left out (too short)."
    )
    scrub_pii: bool = Field(
        True,
        description="Replace emails, phones, IBANs, cards, addresses and secret URLs by placeholders.",
    )
    private_facts: list[str] = Field(
        default_factory=list,
        description="Strings that must never be trained on (any case); they become <PRIVATE>.",
    )
    drop_bots: bool = Field(True, description="Leave out messages sent by bots or automations.")
    drop_forwarded: bool = Field(
        True, description="Leave out forwarded messages and reposts (not written by you)."
    )
    dedupe: Literal["off", "exact", "near"] = Field(
        "near", description="Leave out repeated examples: exact copies, or near copies too."
    )
    near_duplicate_threshold: float = Field(
        0.8, gt=0, le=1, description="Word 3-gram overlap (Jaccard) above which replies are copies."
    )
    languages: list[str] = Field(
        default_factory=list,
        description="Keep only these languages (ISO codes like 'en', 'de'); empty keeps all.",
    )
    split: Literal["chronological", "conversation"] = Field(
        "chronological",
        description="Hold out the most recent sessions and notes of each source, or whole conversations.",
    )
    valid_fraction: float = Field(
        0.15, ge=0, lt=1, description="Share of each source's tokens held out for evaluation."
    )
    min_valid_tokens: int = Field(
        512,
        ge=0,
        description="Hold out at least this many tokens per source (the most recent material), "
        "when that leaves the source max_valid_share or more to train on.",
    )
    max_valid_share: float = Field(
        0.4, gt=0, lt=1, description="Never hold out more than this share of a source's tokens."
    )
    valid_note_chunk_tokens: int = Field(
        160,
        ge=32,
        description="Held-out notes are cut (on block boundaries) into pieces this long, so that a "
        "small vault still gives several held-out examples.",
    )
    probe_per_source: int = Field(
        8, ge=0, description="Held-out examples per source marked as the fixed probe set."
    )
    source_weights: dict[str, float] = Field(
        default_factory=dict,
        description="Share of training tokens per source, e.g. {notes: 0.3, whatsapp: 0.5}.",
    )
    max_examples_per_source: int | None = Field(
        None, ge=1, description="Most training examples from any one source."
    )


class TrainConfig(Section):
    preset: Literal["cpu", "gpu", "multi-gpu"] | None = Field(
        None,
        description="Hardware preset filling every setting not given here: cpu, gpu or multi-gpu "
        "(docs/training.md).",
    )
    base: str = Field(
        "embedded",
        description="Base model: 'embedded' (SmolLM2-135M-Instruct, no download), a model id or a path.",
    )
    method: Literal["lora", "qlora", "full"] = Field(
        "lora",
        description="'lora' (adapter), 'qlora' (adapter on a 4-bit base; needs CUDA and "
        "bitsandbytes) or 'full' (every weight trained).",
    )
    epochs: float | None = Field(
        None,
        gt=0,
        description="Passes over the training data; unset: 3, or as many as `minutes` fits. "
        "Given, it wins over the plan (minutes then only caps the run).",
    )
    max_steps: int | None = Field(
        None,
        ge=1,
        description="Stop after this many optimizer steps (wins over epochs and minutes).",
    )
    minutes: float | None = Field(
        None,
        gt=0,
        description="Plan the run to take about this many minutes: measure the first steps, fit as "
        "many steps as the time allows, keep the best checkpoint, stop early (docs/training.md).",
    )
    learning_rate: float | None = Field(
        None,
        gt=0,
        description="Peak learning rate, used as given; unset: base_learning_rate scaled to the run.",
    )
    base_learning_rate: float = Field(
        4e-4,
        gt=0,
        description="Peak learning rate of a run of 100+ steps when learning_rate is unset; "
        "shorter runs get up to 2x (x sqrt(100 / steps)).",
    )
    lr_scheduler: Literal["cosine", "linear", "constant_with_warmup"] = Field(
        "cosine", description="Learning-rate schedule after the warm-up."
    )
    warmup_ratio: float = Field(
        0.05, ge=0, lt=1, description="Share of steps spent warming up (at least one step)."
    )
    batch_size: int = Field(
        2, ge=1, description="Rows per step per device (a row packs several examples)."
    )
    gradient_accumulation: int = Field(1, ge=1, description="Steps accumulated per update.")
    max_seq_len: int = Field(
        768, ge=32, description="Row length in tokens: examples are packed into rows this long."
    )
    packing: bool = Field(
        True, description="Pack several examples per row (no attention across examples)."
    )
    lora_r: int = Field(16, ge=1, description="LoRA rank.")
    lora_alpha: int = Field(32, ge=1, description="LoRA alpha (scale = alpha / r).")
    lora_dropout: float = Field(
        0.0, ge=0, lt=1, description="Dropout on LoRA inputs (0 skips it: ~14% faster on CPU)."
    )
    target_modules: list[str] | Literal["all-linear"] = Field(
        "all-linear", description="Modules LoRA adapts: 'all-linear' or a list of names."
    )
    precision: Literal["auto", "bf16", "fp32"] = Field(
        "auto", description="'auto' uses bfloat16 where the hardware has it, float32 elsewhere."
    )
    gradient_checkpointing: bool = Field(
        False, description="Recompute activations in the backward pass (less memory, ~30% slower)."
    )
    eval_every: int | None = Field(
        None,
        ge=1,
        description="Validation loss (and a checkpoint) every N steps; unset: every epoch and at "
        "least min_evals times a run.",
    )
    min_evals: int = Field(
        8, ge=1, description="Evaluations per run at least, when eval_every is unset."
    )
    early_stopping_patience: int | None = Field(
        3, ge=1, description="Stop after this many evaluations without a better validation loss."
    )
    early_stopping_min_delta: float = Field(
        0.005,
        ge=0,
        description="A validation loss must fall by more than this to count as better.",
    )
    report_to: list[Literal["tensorboard", "wandb", "mlflow"]] = Field(
        default_factory=list,
        description="Also send metrics to these trackers (runs/<id>/metrics.jsonl is always written).",
    )
    seed: int = Field(0, description="Random seed.")


class SampleConfig(Section):
    n: int = Field(4, ge=1, le=64, description="Candidates per prompt.")
    temperature: float = Field(0.8, ge=0, description="Sampling temperature (0 = greedy).")
    top_p: float = Field(0.95, gt=0, le=1, description="Nucleus sampling threshold.")
    max_tokens: int = Field(128, ge=1, description="Most new tokens per candidate.")


EVAL_SECTIONS = (
    "perplexity",
    "style",
    "authorship",
    "judge",
    "canaries",
    "regurgitation",
    "pii",
    "boundaries",
    "memory",
    "picks",
)


class EvalConfig(Section):
    sections: list[str] = Field(
        list(EVAL_SECTIONS),
        description="Report sections to run: " + ", ".join(EVAL_SECTIONS) + ".",
    )
    contexts: int = Field(
        24,
        ge=1,
        description="Held-out chat contexts the twin replies to (style, authorship, judge).",
    )
    note_prompts: int = Field(
        16,
        ge=0,
        description="Held-out note beginnings the twin continues (style and authorship of notes).",
    )
    candidates: int = Field(2, ge=1, le=16, description="Generated replies per held-out context.")
    max_new_tokens: int = Field(48, ge=8, description="Most new tokens per generated reply.")
    temperature: float = Field(0.8, ge=0, description="Sampling temperature for generated replies.")
    canary_candidates: int = Field(
        200, ge=10, description="Random secrets each planted canary is ranked against (exposure)."
    )
    regurgitation_prompts: int = Field(
        16, ge=0, description="Training targets whose prefix is given to test verbatim copying."
    )
    prefix_tokens: int = Field(
        16, ge=1, description="Tokens of a training target given as the regurgitation prompt."
    )
    free_samples: int = Field(
        8,
        ge=0,
        description="Free samples (no prompt) checked against the training set and for PII.",
    )
    judge: Literal["tuned", "base", "endpoint", "none"] = Field(
        "base",
        description="Who scores whether a reply answers its message: a model or an endpoint.",
    )
    judge_endpoint: str | None = Field(
        None,
        description="OpenAI-compatible base URL for judge: endpoint (nothing is sent otherwise).",
    )
    judge_model: str = Field("gpt-4o-mini", description="Model name sent to the judge endpoint.")
    judge_api_key_env: str = Field(
        "OPENAI_API_KEY", description="Environment variable holding the judge endpoint's API key."
    )
    minutes: float | None = Field(
        None,
        ge=0,
        description="Time budget of the whole report: each section's sample is sized to fit and the "
        "report says what it left out; unset: 3 on a CPU, none on a GPU; 0: no budget.",
    )
    seed: int = Field(0, description="Random seed for sampling and for choosing contexts.")


class ServeConfig(Section):
    host: str = Field(
        "127.0.0.1", description="Address to bind; anything but loopback requires api_key."
    )
    port: int = Field(8000, ge=1, le=65535, description="Port to listen on.")
    engine: Literal["auto", "transformers", "llamacpp", "openai"] = Field(
        "auto",
        description="'auto' uses llama.cpp (writing a run's GGUF on first use) unless it cannot "
        "run; 'openai' forwards to the upstream server.",
    )
    upstream: str | None = Field(
        None,
        description="engine openai: base URL of an OpenAI-compatible server (vLLM, llama-server, "
        "Ollama), e.g. http://127.0.0.1:8080/v1.",
    )
    upstream_model: str | None = Field(
        None,
        description="engine openai: the model name to send upstream (default: the served name).",
    )
    upstream_api_key_env: str = Field(
        "SELFTUNE_UPSTREAM_API_KEY",
        description="engine openai: environment variable holding the upstream's API key, if any.",
    )
    threads: int | None = Field(
        None, ge=1, description="llama.cpp: CPU threads (default: every core)."
    )
    api_key: str | None = Field(
        None,
        description="Clients must send 'Authorization: Bearer <key>' (required off loopback; "
        "16+ characters). Better in $SELFTUNE_API_KEY or --api-key-file than here.",
    )
    cors_origins: list[str] = Field(
        default_factory=list, description="Web origins allowed to call the API (none by default)."
    )
    max_batch: int = Field(
        16, ge=1, description="Most candidates (all requests together) in one forward pass."
    )
    queue_size: int = Field(
        64, ge=1, description="Requests waiting beyond this are refused with 429 (back-pressure)."
    )
    batch_wait_ms: float = Field(
        10,
        ge=0,
        description="transformers engine: how long to wait for more requests to join a batch.",
    )
    timeout_s: float = Field(120, gt=0, description="A request still unfinished after this fails.")
    max_n: int = Field(16, ge=1, description="Most candidates one request may ask for.")
    max_tokens_limit: int = Field(
        1024, ge=1, description="Most new tokens one request may ask for."
    )
    max_body_bytes: int = Field(
        1_000_000, ge=1024, description="Larger request bodies are refused with 413."
    )
    body_timeout_s: float = Field(
        30, gt=0, description="A request body not arrived whole within this is refused with 408."
    )
    max_receiving: int = Field(
        32,
        ge=1,
        description="Most requests sending their body at once; more are refused with 503.",
    )
    max_prompt_tokens: int = Field(
        4096,
        ge=16,
        description="Longer prompts are refused with 400 before they wait for the model.",
    )
    log_samples: bool = Field(
        True, description="Keep prompts, candidates, picks and ratings in store.sqlite."
    )
    guard_output: bool = Field(
        True,
        description="Redact private facts, scrubbed placeholders and PII-shaped text in output.",
    )
    refuse_injection: bool = Field(
        True, description="Refuse unattended requests whose input looks like a prompt injection."
    )
    tag_prefix: str = Field(
        "", description="Text put before every generated candidate, e.g. '#[[twin says]] '."
    )
    neutralise_links: bool = Field(
        False, description="Turn [[links]] and #tags in output into plain text (for note apps)."
    )
    rank: bool = Field(
        False,
        description="Order candidates best-first with the preference ranker (`selftune rank "
        "--train`); a request's `rank` field overrides this.",
    )


class ImproveConfig(Section):
    n: int = Field(4, ge=2, le=16, description="Candidates per prompt that `amplify` writes.")
    max_tokens: int = Field(64, ge=1, description="Most new tokens per amplified candidate.")
    prompts: int = Field(
        16, ge=1, description="Prompts `amplify` takes from the training split when given no file."
    )
    temperature: float = Field(0.9, ge=0, description="Sampling temperature for `amplify`.")
    method: Literal["auto", "sft", "dpo", "kto"] = Field(
        "auto",
        description="How `distill` learns: sft (kept text), dpo (chosen vs rejected), kto "
        "(thumbs), or auto (what the picks support).",
    )
    minutes: float | None = Field(
        None, gt=0, description="Stop each `distill` phase after this many minutes."
    )
    epochs: float = Field(2, gt=0, description="Passes over the picks (and replay) per phase.")
    learning_rate: float = Field(1e-4, gt=0, description="Peak learning rate of `distill`.")
    beta: float = Field(
        0.1, gt=0, description="DPO/KTO beta: how far the twin may move from its parent."
    )
    replay: float = Field(
        2.0,
        ge=0,
        description="Original training examples replayed per kept pick, so the twin does not "
        "forget the rest of you.",
    )
    held_out: float = Field(
        0.2, ge=0, lt=1, description="Share of the most recent picks kept back for evaluation."
    )
    seed: int = Field(0, description="Random seed for prompts, replay and training.")


class MemoryConfig(Section):
    enabled: bool = Field(
        True,
        description="Give the twin a memory block in its system prompt (training and use alike): "
        "earlier turns of the chat, relevant past exchanges, matching public facts (facts.yaml).",
    )
    max_tokens: int = Field(
        # 128, not 256: every training example carries its block, and at 256 the blocks doubled
        # the bundled example's training tokens (15.3k -> 31.5k; 23.7k at 128), so a 3-minute
        # demo trained less than one epoch. The budget fills facts, then the latest turns, then
        # past exchanges, so what a smaller block loses is past exchanges.
        128,
        ge=16,
        le=4096,
        description="Most tokens of the memory block in one prompt (training examples and use "
        "alike; each training example pays for its block in every step).",
    )
    recent_turns: int = Field(
        6, ge=0, description="Earlier messages of the same conversation put in the block."
    )
    exchanges: int = Field(
        3, ge=0, description="Most past exchanges (a message and the replies around it) retrieved."
    )
    facts: int = Field(4, ge=0, description="Most public facts put in the block.")
    facts_place: Literal["first", "last"] = Field(
        "last",
        description="Where the block's facts go: last (right before the conversation, where a "
        "small model copies from best) or first.",
    )
    same_contact_boost: float = Field(
        2.0, ge=1, description="How much more an exchange with the same contact counts."
    )
    scope: Literal["participants", "everyone"] = Field(
        "participants",
        description="Which past messages a reply's block may quote: 'participants' only those "
        "of conversations everyone who sees the reply took part in (notes to self only for "
        "you); 'everyone' any conversation (docs/memory.md).",
    )


class MatrixConfig(Section):
    rooms: list[str] = Field(
        default_factory=list,
        description="Rooms the bot drafts replies in (room ids like '!abc:example.org'); none by "
        "default, so `selftune matrix bot` drafts nowhere until you list some.",
    )
    approvals_room: str | None = Field(
        None,
        description="Your private room where the bot sends drafts and you answer (1..N, "
        "'e <text>', 'r'); empty: the bot creates one with only you in it on its first start.",
    )
    drafts: int = Field(3, ge=1, le=9, description="Drafts offered for each message.")
    expire_minutes: float = Field(
        60, gt=0, description="Drafts not answered within this many minutes are dropped."
    )
    min_seconds_between_drafts: float = Field(
        5,
        ge=0,
        description="A room gets new drafts at most once in this many seconds (messages in "
        "between are drafted for together).",
    )
    max_drafts_per_hour: int = Field(
        30, ge=1, description="Most draft sets the bot makes in an hour, all rooms together."
    )
    context_messages: int = Field(
        12, ge=1, description="The room's latest messages the drafts are written to."
    )
    ingest_rooms: list[str] = Field(
        default_factory=list,
        description="Rooms `selftune ingest matrix` reads (room ids); empty: every joined room.",
    )


class TwinConfig(Section):
    name: str = Field("twin", description="A name for this twin (used in reports and the API).")
    me: list[str] = Field(
        default_factory=list,
        description="Your names, handles, numbers and addresses as they appear in exports.",
    )
    build: BuildConfig = Field(default_factory=BuildConfig, description="selftune build")
    train: TrainConfig = Field(default_factory=TrainConfig, description="selftune train")
    sample: SampleConfig = Field(default_factory=SampleConfig, description="selftune sample")
    eval: EvalConfig = Field(default_factory=EvalConfig, description="selftune eval")
    serve: ServeConfig = Field(
        default_factory=ServeConfig, description="selftune serve, chat and reply"
    )
    improve: ImproveConfig = Field(
        default_factory=ImproveConfig, description="selftune amplify, distill and rank"
    )
    memory: MemoryConfig = Field(
        default_factory=MemoryConfig,
        description="Memory and facts (docs/memory.md): build, reply, chat, serve and eval",
    )
    matrix: MatrixConfig = Field(
        default_factory=MatrixConfig,
        description="Matrix (docs/matrix.md): `ingest matrix` and `matrix bot`; the login is "
        "in secrets/matrix.json, never here",
    )


def is_loopback(host: str) -> bool:
    """True for names of this machine only: localhost, 127.0.0.0/8, ::1."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def format_validation_error(error: ValidationError, source: str) -> str:
    lines = [f"{source}: {error.error_count()} problem(s):"]
    for item in error.errors():
        where = ".".join(str(p) for p in item["loc"]) or "(top level)"
        lines.append(f"  - {where}: {item['msg']}")
    return "\n".join(lines)


def load_config(path: Path) -> TwinConfig:
    """Read twin.yaml; every problem is reported at once, each with its key."""
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from exc
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping of settings at the top level")
    try:
        return TwinConfig.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(format_validation_error(exc, str(path))) from exc


def apply_overrides(section: Section, overrides: dict[str, Any], source: str = "options") -> None:
    """Set the given fields (None values are ignored), reporting all problems at once."""
    problems = []
    for key, value in overrides.items():
        if value is None:
            continue
        try:
            setattr(section, key, value)
        except ValidationError as exc:
            problems.append(format_validation_error(exc, f"{source} --{key.replace('_', '-')}"))
    if problems:
        raise ConfigError("\n".join(problems))


def render_yaml(config: TwinConfig) -> str:
    """twin.yaml text for `config`, with each field's description as a comment above it."""
    header = (
        "# selftune twin settings. Every key is optional; command-line flags override them.\n"
        "# Docs: docs/ARCHITECTURE.md and `selftune COMMAND --help`.\n"
    )
    return header + _render_model(config, indent=0)


def _render_model(model: BaseModel, indent: int) -> str:
    pad = " " * indent
    out = []
    for name, info in type(model).model_fields.items():
        value = getattr(model, name)
        if info.description:
            out.append(f"{pad}# {info.description}")
        if isinstance(value, BaseModel):
            out.append(f"{pad}{name}:")
            out.append(_render_model(value, indent + 2).rstrip("\n"))
        else:
            dumped = yaml.safe_dump(
                {name: value}, default_flow_style=True, allow_unicode=True, width=1000
            )
            out.append(pad + dumped.strip().removeprefix("{").removesuffix("}"))
        if indent == 0:
            out.append("")
    return "\n".join(out) + "\n"
