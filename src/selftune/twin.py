"""The twin: its owner's names and the prompt it is given, for every use.

Training examples (`build`), the evaluation, `sample --chat`, `chat`, `reply`, the server's
`/generate`, `/v1/chat/completions` and `/v1/reply`, `bench` and the demo all take their system
prompt and their reply messages from here, so the twin is prompted at use exactly as it was
trained: the same template, the platform's proper name, and the month ("It is March 2019.").
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

PLATFORMS = {
    "whatsapp": "WhatsApp",
    "telegram": "Telegram",
    "messenger": "Messenger",
    "instagram": "Instagram",
    "email": "email",
    "discord": "Discord",
    "slack": "Slack",
    "imessage": "iMessage",
    "twitter": "X",
    "signal": "Signal",
}
DEFAULT_SOURCE = "whatsapp"
DEFAULT_CONVERSATION = "a chat"
UNNAMED_OWNER = "the owner"
# where the memory block starts in a system prompt (selftune.memory builds the block)
MEMORY_MARK = "\n\nMemory:\n"


def now() -> datetime:
    """The moment a prompt is made at use time (local time, as exports date messages)."""
    return datetime.now().astimezone()


def platform_name(source: str) -> str:
    """'WhatsApp' for 'whatsapp': how the system prompt names where a chat happens."""
    return PLATFORMS.get(source.lower(), source.capitalize())


def system_message(
    template: str,
    owner: str,
    source: str,
    conversation: str,
    when: datetime | None,
    date: bool,
) -> str:
    """The system prompt: who, where, and (when `date`) the month of the conversation."""
    text = template.format(owner=owner, platform=platform_name(source), conversation=conversation)
    if date and when is not None:
        text += f" It is {when:%B %Y}."
    return text


def with_memory(system: str, memory: str | None) -> str:
    """The system prompt with the memory block after it (unchanged when there is none)."""
    return system + MEMORY_MARK + memory if memory else system


def without_memory(system: str) -> str:
    """The system prompt without its memory block."""
    return system.split(MEMORY_MARK, 1)[0]


@dataclass(frozen=True)
class Twin:
    """The owner's names and the prompt settings of one workspace (`me:` and `build:`)."""

    names: tuple[str, ...]
    template: str
    date: bool = True

    @classmethod
    def from_config(cls, config: Any) -> Twin:
        """From a `TwinConfig` (twin.yaml)."""
        return cls(tuple(config.me), config.build.system_prompt, config.build.prompt_date)

    @property
    def owner(self) -> str:
        """The name the prompt uses: the first of `me:`."""
        return self.names[0] if self.names else UNNAMED_OWNER

    def is_owner(self, author: str) -> bool:
        mine = {n.casefold() for n in self.names} | {self.owner.casefold()}
        return author.strip().casefold() in mine

    def system(
        self,
        source: str = DEFAULT_SOURCE,
        conversation: str = DEFAULT_CONVERSATION,
        when: datetime | None = None,
        memory: str | None = None,
    ) -> str:
        """The system prompt for a conversation; at use time `when` defaults to now, as the
        dataset dates each session by its first message. `memory` is the block
        `selftune.memory` made for this reply, put after the prompt as in training."""
        when = when if when is not None else now()
        text = system_message(self.template, self.owner, source, conversation, when, self.date)
        return with_memory(text, memory)

    def chat_messages(
        self,
        messages: list[dict[str, Any]],
        source: str = DEFAULT_SOURCE,
        conversation: str = DEFAULT_CONVERSATION,
        when: datetime | None = None,
        memory: str | None = None,
    ) -> list[dict[str, Any]]:
        """`messages` with the twin's system prompt first when they bring none of their own."""
        if messages and messages[0].get("role") == "system":
            return list(messages)
        system = self.system(source, conversation, when, memory)
        return [{"role": "system", "content": system}, *messages]

    def reply_messages(
        self,
        turns: list[tuple[str, str]],
        source: str = DEFAULT_SOURCE,
        conversation: str = DEFAULT_CONVERSATION,
        when: datetime | None = None,
        system: str | None = None,
        memory: str | None = None,
    ) -> list[dict[str, str]]:
        """Chat messages for drafting the owner's next reply to (author, text) turns."""
        prompt = system if system is not None else self.system(source, conversation, when, memory)
        return reply_messages(turns, list(self.names) or [self.owner], prompt)


def reply_messages(
    turns: list[tuple[str, str]], me: list[str], system: str
) -> list[dict[str, str]]:
    """Chat messages for drafting the owner's next reply to (author, text) turns, shaped like the
    training examples: the owner's turns are the assistant's, others' consecutive turns merge into
    one user message, with speaker names when more than one other person speaks."""
    mine = {m.casefold() for m in me}
    others = {a for a, _ in turns if a.casefold() not in mine}
    group = len(others) > 1
    out: list[dict[str, str]] = [{"role": "system", "content": system}]
    for author, text in turns:
        is_me = author.casefold() in mine
        role = "assistant" if is_me else "user"
        content = f"{author}: {text}" if group and not is_me else text
        if out[-1]["role"] == role:
            out[-1]["content"] += "\n" + content
        else:
            out.append({"role": role, "content": content})
    return out
