"""`TwinSession`: the twin put to work. It owns the engine, the twin's prompt (`selftune.twin`),
the memory block, the output guard, the ranker and the sample log, so every caller — the CLI's
`sample`/`chat`/`reply`/`serve`, the server's routes (through its scheduler), amplify, the demo,
bench and the evaluation's sides — prompts, guards, ranks and logs the twin the same way.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from selftune.config import SampleConfig
from selftune.engines.base import GenRequest, GenResult, render_chat
from selftune.guards import GuardedStream, OutputGuard, output_guard
from selftune.scoring.ranker import Ranker, load_ranker
from selftune.store.samples import SampleLog
from selftune.twin import DEFAULT_CONVERSATION, DEFAULT_SOURCE, Twin
from selftune.workspace import Workspace

Messages = list[dict[str, Any]]


@dataclass
class Candidates:
    """What one call gave: guarded (and ranked) texts, the logged sample's id (None when
    logging is off), the exact prompt the model got, and flags (`redacted`, `ranked`)."""

    texts: list[str]
    sample_id: int | None
    prompt: str
    flags: list[str] = field(default_factory=list)
    result: GenResult | None = None


def guard_for(ws: Workspace, training: bool = False) -> OutputGuard:
    """The workspace's output guard: twin.yaml's and facts.yaml's private facts."""
    from selftune.memory.facts import private_facts

    return output_guard(private_facts(ws), ws.config.serve, training=training)


def open_twin_engine(
    ws: Workspace,
    run: str | None = None,
    kind: str | None = None,
    base_only: bool = False,
    echo: Callable[[str], Any] | None = None,
) -> Any:
    """The engine for the tuned run `run` (default: the latest) or, `base_only`, the base."""
    from selftune.engines import ModelSpec, open_engine

    if base_only:
        spec = ModelSpec("base", ws.config.train.base)
    else:
        found = ws.artefacts.run(run)
        spec = ModelSpec(found.id, found.base, found.path)
    engine = open_engine(spec, kind or ws.config.serve.engine, serve=ws.config.serve, echo=echo)
    if echo is not None:
        echo(f"{spec.name} on {engine.choice.describe()}")
    return engine


@dataclass
class TwinSession:
    """The twin in use. `engine` is None for the server, whose scheduler runs each model's
    engine: it asks the session for prompts (`chat_prompt`, `reply_prompt`), `finish` and
    `record`, passing the model's tokenizer."""

    twin: Twin
    guard: OutputGuard
    log: SampleLog
    memory: Any = None  # selftune.memory.Memory, None when switched off
    ranker: Ranker | None = None
    engine: Any = None
    sampling: SampleConfig = field(default_factory=SampleConfig)
    show_prompt: Callable[[str], Any] | None = None  # sees each prompt before the model does
    # who asks when no contact is named: the owner (the CLI, amplify, the demo: memory may
    # recall everything) or nobody known (the server, which decides per request: public facts
    # only). See selftune.memory.scope.
    owner: bool = False

    @classmethod
    def for_workspace(
        cls, ws: Workspace, *, memory: bool = True, rank: bool = True, log: bool = True
    ) -> TwinSession:
        """The session of `ws` without an engine (the server opens one per model)."""
        from selftune.memory import Memory

        use_memory = memory and ws.config.memory.enabled
        logging = log and ws.config.serve.log_samples
        return cls(
            twin=Twin.from_config(ws.config),
            guard=guard_for(ws),
            log=SampleLog(ws.store_path if logging else None),
            memory=Memory.from_workspace(ws) if use_memory else None,
            ranker=load_ranker(ws.root) if rank else None,
            sampling=ws.config.sample,
        )

    @classmethod
    def open(
        cls,
        ws: Workspace,
        run: str | None = None,
        engine: str | Any = None,
        base_only: bool = False,
        *,
        memory: bool = True,
        rank: bool = True,
        log: bool = True,
        echo: Callable[[str], Any] | None = None,
    ) -> TwinSession:
        """The session of `ws` on run `run` (default: the latest; `base_only`: the base model).
        `engine` is an engine kind (auto, transformers, llamacpp, openai; None: twin.yaml's
        `serve.engine`) or an engine already loaded (tests, benchmarks)."""
        session = cls.for_workspace(ws, memory=memory, rank=rank, log=log)
        session.owner = True  # a command the owner runs on their own twin
        if engine is None or isinstance(engine, str):
            engine = open_twin_engine(ws, run, engine, base_only, echo)
        session.engine = engine
        return session

    @classmethod
    def bare(cls, engine: Any) -> TwinSession:
        """The model as it is, for measuring it: no guard, memory or ranker, nothing logged."""
        return cls(Twin((), ""), OutputGuard(enabled=False), SampleLog(None), engine=engine)

    # prompts --------------------------------------------------------------------------------

    def chat_messages(
        self,
        messages: Messages,
        contact: str | None = None,
        tokenizer: Any = None,
        owner: bool | None = None,
    ) -> Messages:
        """`messages` with the twin's system prompt and memory block first, unless they bring a
        system message of their own (then as they are, with no memory). The block is for who
        sees the reply: `contact` when named, else the owner when `owner` (default: the
        session's `owner`), else nobody known (public facts only)."""
        if messages and messages[0].get("role") == "system":
            return list(messages)
        block = None
        if self.memory is not None:
            count = self._counter(tokenizer)
            asker = self.owner if owner is None else owner
            block = self.memory.for_messages(messages, contact, count_tokens=count, owner=asker)
        return self.twin.chat_messages(messages, memory=block)

    def reply_messages(
        self,
        turns: Sequence[tuple[str, str]],
        platform: str = DEFAULT_SOURCE,
        conversation: str = DEFAULT_CONVERSATION,
        tokenizer: Any = None,
    ) -> Messages:
        """Chat messages for the owner's next reply to (author, text) turns, memory included."""
        block = None
        if self.memory is not None:
            count = self._counter(tokenizer)
            block = self.memory.for_turns(list(turns), platform, conversation, count_tokens=count)
        return self.twin.reply_messages(list(turns), platform, conversation, memory=block)

    def render(self, messages: Messages, tokenizer: Any = None) -> str:
        """The exact text the model gets for `messages` (control tokens escaped)."""
        return render_chat(tokenizer or self.engine.tokenizer, messages)

    def chat_prompt(
        self,
        messages: Messages,
        contact: str | None = None,
        tokenizer: Any = None,
        owner: bool | None = None,
    ) -> str:
        return self.render(self.chat_messages(messages, contact, tokenizer, owner), tokenizer)

    def reply_prompt(
        self,
        turns: Sequence[tuple[str, str]],
        platform: str = DEFAULT_SOURCE,
        conversation: str = DEFAULT_CONVERSATION,
        tokenizer: Any = None,
    ) -> str:
        return self.render(self.reply_messages(turns, platform, conversation, tokenizer), tokenizer)

    def prompt_for(self, text: str, chat: bool = False, tokenizer: Any = None) -> str:
        """`sample`'s prompt: `text` to continue, or (`chat`) a message to reply to."""
        if not chat:
            return text
        return self.chat_prompt([{"role": "user", "content": text}], tokenizer=tokenizer)

    def _counter(self, tokenizer: Any) -> Callable[[str], int] | None:
        """The memory budget's token count, with the model's tokenizer."""
        from selftune.memory import token_counter

        tokenizer = tokenizer or getattr(self.engine, "tokenizer", None)
        return token_counter(tokenizer) if tokenizer is not None else None

    # generating -----------------------------------------------------------------------------

    def generate(self, requests: list[GenRequest]) -> list[GenResult]:
        """The engine's results for `requests`, all in one batched call; each prompt is shown
        first when `show_prompt` is set."""
        if self.show_prompt is not None:
            for request in requests:
                self.show_prompt(request.prompt)
        return self.engine.generate(requests)

    def request(self, prompt: str, n: int | None = None, **sampling: Any) -> GenRequest:
        """A request for `prompt` with the workspace's sampling settings, `sampling` over them."""
        s = self.sampling
        given = {k: v for k, v in sampling.items() if v is not None}
        return GenRequest(
            prompt,
            n or s.n,
            given.pop("temperature", s.temperature),
            given.pop("top_p", s.top_p),
            given.pop("max_tokens", s.max_tokens),
            **given,
        )

    def clean(self, texts: list[str], context: str = "") -> tuple[list[str], list[str]]:
        """(guarded texts, ["redacted"] when the guard changed any). `context` is the text the
        output follows, read with it so a fact split across the two is caught."""
        clean = [self.guard(t, context) for t in texts]
        return clean, (["redacted"] if clean != texts else [])

    def order(self, texts: list[str]) -> tuple[list[str], list[str]]:
        """(texts best-first, ["ranked"]) with a ranker and several texts; else as they are."""
        if self.ranker is None or len(texts) < 2:
            return texts, []
        return self.ranker.order(texts), ["ranked"]

    def ranking(self, texts: list[str]) -> list[int]:
        """The indices of `texts` best-first (identity without a ranker)."""
        if self.ranker is None or len(texts) < 2:
            return list(range(len(texts)))
        scores = self.ranker.scores(texts)
        return sorted(range(len(texts)), key=lambda i: -scores[i])

    def record(
        self,
        endpoint: str,
        shown: Any,
        params: dict[str, Any],
        texts: list[str],
        flags: Sequence[str] = (),
        model: str | None = None,
    ) -> int | None:
        """Log a sample (None when logging is off)."""
        model = model or getattr(self.engine, "model_id", "twin")
        return self.log.add(endpoint, model, shown, params, texts, list(flags))

    def finish(
        self,
        request: GenRequest,
        result: GenResult,
        context: str,
        endpoint: str,
        shown: Any,
        params: dict[str, Any],
        strip: str | None | bool = "\n",
        rank: bool = True,
    ) -> Candidates:
        """Guard, rank and log one request's result; `strip` is what to strip from each end
        (None: whitespace; False: nothing)."""
        texts, flags = self.clean(result.texts, context)
        if strip is not False:
            texts = [t.strip(strip) for t in texts]
        ranked: list[str] = []
        if rank:
            texts, ranked = self.order(texts)
        sample_id = self.record(endpoint, shown, params, texts, [*flags, *ranked])
        return Candidates(texts, sample_id, request.prompt, [*flags, *ranked], result)

    def sample(
        self,
        prompt: str,
        chat: bool = False,
        n: int | None = None,
        rank: bool = True,
        endpoint: str = "cli-sample",
        **sampling: Any,
    ) -> Candidates:
        """N candidates for `prompt`: text to continue, or (`chat`) a message to reply to."""
        request = self.request(self.prompt_for(prompt, chat), n, **sampling)
        result = self.generate([request])[0]
        params = {"n": request.n, "chat": chat}  # `chat`: rebuild the prompt as a reply (distill)
        return self.finish(request, result, prompt, endpoint, prompt, params, rank=rank)

    def reply(
        self,
        turns: Sequence[tuple[str, str]],
        platform: str = DEFAULT_SOURCE,
        conversation: str = DEFAULT_CONVERSATION,
        n: int | None = None,
        rank: bool = True,
        endpoint: str = "cli-reply",
        **sampling: Any,
    ) -> Candidates:
        """N drafts of the owner's reply to (author, text) `turns`."""
        request = self.request(self.reply_prompt(turns, platform, conversation), n, **sampling)
        result = self.generate([request])[0]
        shown = [{"author": a, "text": t} for a, t in turns]
        return self.finish(
            request, result, turns[-1][1], endpoint, shown, {"n": request.n}, None, rank
        )

    def chat(
        self,
        messages: Messages,
        contact: str | None = None,
        stream: Callable[[str], Any] | None = None,
        endpoint: str = "cli-chat",
        **sampling: Any,
    ) -> Candidates:
        """The twin's next message after `messages` (no system message: the twin's, with its
        memory block). `stream` gets the guarded text as it is written."""
        shown = self.chat_messages(messages, contact)
        last = (messages[-1].get("content") or "") if messages else ""
        request = self.request(self.render(shown), 1, **sampling)
        guarded = GuardedStream(self.guard, context=last)
        if stream is not None:
            request.on_text = lambda _, text: stream(guarded.feed(text))
        result = self.generate([request])[0]
        if stream is not None:
            stream(guarded.finish())
        return self.finish(request, result, last, endpoint, shown, {"n": 1}, False, False)
