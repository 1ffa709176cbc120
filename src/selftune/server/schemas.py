"""Request and response bodies of the HTTP API (OpenAI's shapes where OpenAI defines them).

Every field OpenAI defines for chat and completions is declared here, so each is either honoured
or refused (`routes/openai.py` checks them; `docs/serving.md` lists which is which). Fields
OpenAI does not define are kept in `model_extra` and named back in the response as ignored.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from selftune.engines.base import MAX_TOP_LOGPROBS


class Sampling(BaseModel):
    model_config = ConfigDict(extra="ignore")

    model: str = "twin"
    n: int = Field(1, ge=1)
    temperature: float = Field(0.8, ge=0, le=2)
    top_p: float = Field(0.95, gt=0, le=1)
    max_tokens: int | None = Field(None, ge=1)
    max_completion_tokens: int | None = Field(None, ge=1)
    stop: str | list[str] | None = None
    seed: int | None = None
    stream: bool = False
    user: str | None = None
    stream_options: dict[str, Any] | None = None
    presence_penalty: float = Field(0.0, ge=-2, le=2)
    frequency_penalty: float = Field(0.0, ge=-2, le=2)
    logit_bias: dict[str, float] | None = Field(
        None, description="Token id (as a string) → bias from -100 to 100 added to its logit."
    )
    tag_prefix: str | None = Field(None, description="selftune: put this before each candidate.")
    plain_links: bool | None = Field(None, description="selftune: make [[links]] and #tags inert.")
    rank: bool | None = Field(None, description="selftune: candidates best-first by the ranker.")
    review: bool | None = Field(
        None,
        description="selftune: put this call's candidates in the Review queue (OpenAI routes: "
        "off unless asked; selftune's own routes: on).",
    )

    def stop_list(self) -> list[str]:
        if self.stop is None:
            return []
        return [self.stop] if isinstance(self.stop, str) else list(self.stop)


class OpenAIRequest(Sampling):
    """Fields OpenAI accepts that change nothing here (metadata, billing, caching hints)."""

    model_config = ConfigDict(extra="allow")

    metadata: dict[str, Any] | None = None
    store: bool | None = None
    service_tier: str | None = None
    safety_identifier: str | None = None
    prompt_cache_key: str | None = None

    def ignored(self) -> list[str]:
        """Fields the client sent that OpenAI does not define (and so neither does selftune)."""
        return sorted(self.model_extra or {})


class ChatMessage(BaseModel):
    model_config = ConfigDict(extra="allow")

    role: Literal["system", "user", "assistant", "developer", "tool", "function"]
    content: str | list[dict[str, Any]] | None = ""
    name: str | None = None
    tool_calls: list[dict[str, Any]] | None = None
    function_call: dict[str, Any] | None = None
    refusal: str | None = None

    def text(self) -> str:
        if isinstance(self.content, list):
            return "".join(p.get("text", "") for p in self.content if p.get("type") == "text")
        return self.content or ""


class ChatCompletionRequest(OpenAIRequest):
    messages: list[ChatMessage] = Field(min_length=1)
    logprobs: bool | None = False
    top_logprobs: int | None = Field(None, ge=0, le=MAX_TOP_LOGPROBS)
    response_format: dict[str, Any] | None = None
    tools: list[dict[str, Any]] | None = None
    tool_choice: str | dict[str, Any] | None = None
    parallel_tool_calls: bool | None = None
    functions: list[dict[str, Any]] | None = None
    function_call: str | dict[str, Any] | None = None
    modalities: list[str] | None = None
    audio: dict[str, Any] | None = None
    prediction: dict[str, Any] | None = None
    web_search_options: dict[str, Any] | None = None
    reasoning_effort: str | None = None
    verbosity: str | None = None


class CompletionRequest(OpenAIRequest):
    prompt: str | list[str]
    logprobs: int | None = Field(None, ge=0, le=5)
    echo: bool | None = False
    best_of: int | None = Field(None, ge=1)
    suffix: str | None = None


class Usage(BaseModel):
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int


class AssistantMessage(BaseModel):
    role: Literal["assistant"] = "assistant"
    content: str
    refusal: None = None


class TopLogprob(BaseModel):
    token: str
    logprob: float
    bytes: list[int] | None


class TokenLogprobOut(TopLogprob):
    top_logprobs: list[TopLogprob]


class ChatLogprobs(BaseModel):
    content: list[TokenLogprobOut] | None
    refusal: None = None


class ChatChoice(BaseModel):
    index: int
    message: AssistantMessage
    finish_reason: str
    logprobs: ChatLogprobs | None = None


class ChatCompletion(BaseModel):
    id: str
    object: Literal["chat.completion"] = "chat.completion"
    created: int
    model: str
    choices: list[ChatChoice]
    usage: Usage
    selftune: dict[str, Any] = Field(default_factory=dict)


class CompletionLogprobs(BaseModel):
    """The legacy completions shape: parallel lists, one entry per token."""

    tokens: list[str]
    token_logprobs: list[float]
    top_logprobs: list[dict[str, float]]
    text_offset: list[int]


class CompletionChoice(BaseModel):
    index: int
    text: str
    finish_reason: str
    logprobs: CompletionLogprobs | None = None


class Completion(BaseModel):
    id: str
    object: Literal["text_completion"] = "text_completion"
    created: int
    model: str
    choices: list[CompletionChoice]
    usage: Usage
    selftune: dict[str, Any] = Field(default_factory=dict)


class ModelCard(BaseModel):
    id: str
    object: Literal["model"] = "model"
    created: int
    owned_by: str = "selftune"
    engine: str | None = None  # selftune: llamacpp, transformers or openai
    engine_reason: str | None = None  # why that engine ("loaded" or what loading would pick)
    loaded: bool = False


class ModelList(BaseModel):
    object: Literal["list"] = "list"
    data: list[ModelCard]


class GenerateRequest(Sampling):
    """`POST /generate`: a plain prompt (text to continue, or a message to reply to with chat)."""

    prompt: str
    n: int = Field(4, ge=1)
    chat: bool = False
    system: str | None = None
    unattended: bool = False


class GenerateResponse(BaseModel):
    id: int | None = Field(description="The sample id to pick or rate by (None: logging off).")
    model: str
    prompt: str
    candidates: list[str]
    finish_reasons: list[str]
    usage: Usage
    flags: list[str] = Field(default_factory=list)
    seconds: float


class Turn(BaseModel):
    author: str = Field(description="Who said it; the owner's own turns use one of the `me` names.")
    text: str


class ReplyRequest(Sampling):
    """`POST /v1/reply`: the last messages of a conversation; N drafts of the owner's reply."""

    messages: list[Turn] = Field(min_length=1)
    n: int = Field(3, ge=1)
    platform: str = Field(
        "whatsapp", description="Where the conversation happens (whatsapp, telegram, email, ...)."
    )
    conversation: str = Field("a chat", description="The conversation's name, as in training.")
    unattended: bool = False


class PickRequest(BaseModel):
    candidate: int = Field(ge=0)
    edited: str | None = None


class RateRequest(BaseModel):
    candidate: int = Field(ge=0)
    rating: int = Field(ge=-1, le=5, description="-1 thumbs down, 1 thumbs up, or 0..5 stars.")


class BlindPair(BaseModel):
    report: str
    pair: int
    context: list[Any]
    options: list[str] = Field(description="The real and the generated reply, in random order.")


class BlindAnswer(BaseModel):
    report: str
    pair: int
    choice: int = Field(ge=0, le=1, description="Index in `options` of the one you think is real.")
    options: list[str]


class ResponseRequest(BaseModel):
    """`POST /v1/responses`: OpenAI's Responses API, text in and text out (routes/responses.py
    says what each field does; fields OpenAI does not define are named back as ignored)."""

    model_config = ConfigDict(extra="allow")

    model: str = "twin"
    input: str | list[dict[str, Any]] = Field(
        description="A message to answer, or a list of messages (roles user, assistant, system, "
        "developer; text content or input_text/output_text parts)."
    )
    instructions: str | None = Field(None, description="The system message for this response.")
    previous_response_id: str | None = None
    max_output_tokens: int | None = Field(None, ge=1)
    temperature: float | None = Field(None, ge=0, le=2)
    top_p: float | None = Field(None, gt=0, le=1)
    stream: bool = False
    store: bool | None = None
    text: dict[str, Any] | None = None
    user: str | None = None
    metadata: dict[str, Any] | None = None
    # accepted, change nothing here
    service_tier: str | None = None
    safety_identifier: str | None = None
    prompt_cache_key: str | None = None
    parallel_tool_calls: bool | None = None
    truncation: str | None = None
    stream_options: dict[str, Any] | None = None
    # refused unless empty (routes/responses.py)
    tools: list[dict[str, Any]] | None = None
    tool_choice: str | dict[str, Any] | None = None
    include: list[str] | None = None
    reasoning: dict[str, Any] | None = None
    background: bool | None = None
    conversation: str | dict[str, Any] | None = None
    prompt: dict[str, Any] | None = None
    top_logprobs: int | None = None
    max_tool_calls: int | None = None

    def ignored(self) -> list[str]:
        return sorted(self.model_extra or {})
