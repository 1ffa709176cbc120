"""The one HTTP client for OpenAI-compatible servers (vLLM, llama-server, Ollama, a hosted API):
the upstream engine streams completions through it, the evaluation's endpoint side posts chats
and completions through it. Failures become a `SelftuneError` that names the server."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlparse

from selftune.errors import SelftuneError


def api_base(url: str) -> str:
    """`url` checked (http or https) and ending in `/v1`."""
    parsed = urlparse(url)
    if parsed.scheme not in ("http", "https") or not parsed.netloc:
        raise SelftuneError(f"{url!r} is not an http(s) URL; e.g. http://127.0.0.1:8080/v1")
    base = url.rstrip("/")
    return base if base.endswith("/v1") else base + "/v1"


class OpenAIClient:
    """`post(path, body)` for a JSON answer, `stream(path, body)` for server-sent events."""

    def __init__(self, url: str, api_key: str | None = None, timeout_s: float = 300):
        import httpx

        self.base_url = api_base(url)
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self.http = httpx.Client(headers=headers, timeout=httpx.Timeout(timeout_s, connect=10))

    def post(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        import httpx

        try:
            response = self.http.post(self.base_url + path, json=body)
        except httpx.HTTPError as exc:
            raise SelftuneError(f"the server at {self.base_url} failed: {exc}") from exc
        if response.status_code != 200:
            raise SelftuneError(
                f"the server at {self.base_url} answered {response.status_code}: "
                f"{error_message(response.text)}"
            )
        return response.json()

    def stream(self, path: str, body: dict[str, Any]) -> Iterator[dict[str, Any]]:
        """The JSON payloads of a streamed answer, up to `[DONE]`; closing it ends the request."""
        import httpx

        try:
            with self.http.stream("POST", self.base_url + path, json=body) as response:
                if response.status_code != 200:
                    response.read()
                    raise SelftuneError(
                        f"the upstream at {self.base_url} answered {response.status_code}: "
                        f"{error_message(response.text)}"
                    )
                yield from events(response.iter_lines())
        except httpx.HTTPError as exc:
            raise SelftuneError(
                f"the upstream at {self.base_url} is not answering ({exc}); start it "
                "(docs/serving.md) or serve with another --engine"
            ) from exc

    def close(self) -> None:
        self.http.close()


def events(lines: Any) -> Iterator[dict[str, Any]]:
    """The JSON payloads of a server-sent event stream, up to `[DONE]`."""
    for line in lines:
        if not line.startswith("data:"):
            continue
        data = line[5:].strip()
        if data == "[DONE]":
            return
        try:
            payload = json.loads(data)
        except json.JSONDecodeError:
            raise SelftuneError(f"the upstream sent a malformed event: {data[:80]!r}") from None
        if "error" in payload:
            raise SelftuneError(f"the upstream failed: {error_message(json.dumps(payload))}")
        yield payload


def error_message(text: str) -> str:
    try:
        error = json.loads(text).get("error")
    except (json.JSONDecodeError, AttributeError):
        return text[:200]
    if isinstance(error, dict):
        return str(error.get("message", error))[:200]
    return str(error)[:200]
