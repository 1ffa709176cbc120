"""Request and response bodies of the HTTP API (OpenAI's shapes where OpenAI defines them)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field


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
    tag_prefix: str | None = Field(None, description="selftune: put this before each candidate.")
    plain_links: bool | None = Field(None, description="selftune: make [[links]] and #tags inert.")

    def stop_list(self) -> list[str]:
        if self.stop is None:
            return []
        return [self.stop] if isinstance(self.stop, str) else list(self.stop)


class ChatMessage(BaseModel):
    model_config = ConfigDict(extra="ignore")

    role: Literal["system", "user", "assistant", "developer", "tool"]
    content: str | list[dict[str, Any]] | None = ""
    name: str | None = None

    def text(self) -> str:
        if isinstance(self.content, list):
            return "".join(p.get("text", "") for p in self.content if p.get("type") == "text")
        return self.content or ""


class ChatCompletionRequest(Sampling):
    messages: list[ChatMessage] = Field(min_length=1)


class CompletionRequest(Sampling):
    prompt: str | list[str]


class Usage(BaseModel):
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int


class AssistantMessage(BaseModel):
    role: Literal["assistant"] = "assistant"
    content: str


class ChatChoice(BaseModel):
    index: int
    message: AssistantMessage
    finish_reason: str
    logprobs: None = None


class ChatCompletion(BaseModel):
    id: str
    object: Literal["chat.completion"] = "chat.completion"
    created: int
    model: str
    choices: list[ChatChoice]
    usage: Usage
    selftune: dict[str, Any] = Field(default_factory=dict)


class CompletionChoice(BaseModel):
    index: int
    text: str
    finish_reason: str
    logprobs: None = None


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
