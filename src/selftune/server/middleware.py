"""What every request passes before any route sees it: the Host check (DNS rebinding) and the
body size limit; and what every failure passes on its way out: a JSON 500 without the details.
Plain ASGI, so a refused request costs no parsing and no memory.

- Without an API key the server answers only requests addressed to a loopback name
  (`127.0.0.1`, `localhost`, `[::1]`): a web page that rebinds its own domain to 127.0.0.1 sends
  its own Host and is refused, so it can neither read `/api/blind` nor use the API.
- A body over `serve.max_body_bytes` is refused with 413 before it is read past the limit,
  whether it says its length (Content-Length) or streams it (chunked). A body must have arrived
  whole within `body_timeout_s` of its first byte being awaited (one deadline for the whole
  body, not per chunk, so a byte every few seconds does not keep it open), else 408; and at most
  `max_receiving` requests may be sending a body at once (the next gets 503 at once), so slow
  senders cannot take every connection.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from selftune.config import is_loopback

log = logging.getLogger("selftune.server")
Scope = dict[str, Any]
Message = dict[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


def host_name(header: str) -> str:
    """The name part of a Host header: 'localhost:8000' → 'localhost', '[::1]:80' → '::1'."""
    header = header.strip().lower()
    if header.startswith("["):
        return header[1 : header.find("]")] if "]" in header else header
    return header.rsplit(":", 1)[0] if header.count(":") == 1 else header


class Guardrails:
    """Host check (when no API key is set) and body size limit, in front of the whole app."""

    def __init__(
        self,
        app: ASGIApp,
        max_body_bytes: int,
        check_host: bool,
        body_timeout_s: float = 30,
        max_receiving: int = 32,
    ):
        self.app = app
        self.max_body_bytes = max_body_bytes
        self.check_host = check_host
        self.body_timeout_s = body_timeout_s
        self.max_receiving = max_receiving
        self.receiving = 0  # requests whose body is still arriving (one event loop: no lock)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        if self.check_host and not is_loopback(host_name(headers.get("host", ""))):
            return await _refuse(
                send,
                403,
                "this server answers only requests to 127.0.0.1 or localhost; set serve.api_key "
                "to reach it by another name",
                "forbidden_host",
            )
        length = headers.get("content-length", "")
        if length:
            if not length.isdigit():
                return await _refuse(send, 400, "Content-Length is not a number", "bad_length")
            if int(length) > self.max_body_bytes:
                return await _refuse(send, 413, self._too_big(), "body_too_large")
        if scope.get("method") in ("GET", "HEAD", "OPTIONS") and not length:
            return await self._run(scope, receive, send)
        if self.receiving >= self.max_receiving:
            return await _refuse(
                send, 503, "too many requests are still sending their body; try again", "busy"
            )
        self.receiving += 1
        try:
            whole = await asyncio.wait_for(self._read_body(receive), self.body_timeout_s)
        except TimeoutError:
            return await _refuse(
                send,
                408,
                f"the request body did not arrive within {self.body_timeout_s:g} s",
                "timeout",
            )
        except _BodyTooLarge:
            return await _refuse(send, 413, self._too_big(), "body_too_large")
        finally:
            self.receiving -= 1
        if whole is None:  # the client went away
            return
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": whole, "more_body": False}
            return await receive()

        return await self._run(scope, replay, send)

    async def _read_body(self, receive: Receive) -> bytes | None:
        """The whole body (None if the client disconnected); over the limit raises."""
        body, more, size = [], True, 0
        while more:
            message = await receive()
            if message["type"] == "http.disconnect":
                return None
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_body_bytes:
                raise _BodyTooLarge
            body.append(chunk)
            more = message.get("more_body", False)
        return b"".join(body)

    async def _run(self, scope: Scope, receive: Receive, send: Send) -> None:
        """The app, with anything it did not handle turned into a JSON 500 whose log line names
        the exception type and the route only: a traceback or an exception's message may quote
        what the client sent (the full traceback is logged at DEBUG level)."""
        started = False

        async def tracked(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, receive, tracked)
        except Exception as exc:
            log.error(
                "unexpected %s on %s %s", type(exc).__name__, scope.get("method"), scope.get("path")
            )
            log.debug("traceback", exc_info=True)
            if not started:
                await _refuse(send, 500, f"internal error ({type(exc).__name__})", "internal_error")

    def _too_big(self) -> str:
        return (
            f"the request body is larger than {self.max_body_bytes} bytes "
            "(serve.max_body_bytes); send less"
        )


class _BodyTooLarge(Exception):
    pass


async def _refuse(send: Send, status: int, message: str, code: str) -> None:
    from selftune.server.errors import error_body

    payload = json.dumps(error_body(status, message, code)).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(payload)).encode()),
                (b"connection", b"close"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": payload})
