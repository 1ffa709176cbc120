"""Server-sent events for streamed completions (sse-starlette), as OpenAI streams them.

Each chunk is one `data:` event and the stream ends with `data: [DONE]`. A keep-alive comment
goes out every `PING_S` seconds while nothing else does — the output guard may hold text back
for a while, and proxies and browsers close a silent connection. A client that goes away ends
the generator, which cancels the generation.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

from sse_starlette import EventSourceResponse

PING_S: float = 15.0


def event_stream(
    chunks: AsyncIterator[dict[str, Any] | str], named: bool = False
) -> EventSourceResponse:
    """`named`: each chunk's `type` is also its SSE `event:` (the Responses API's events)."""

    async def events() -> AsyncIterator[dict[str, str]]:
        async for chunk in chunks:
            data = chunk if isinstance(chunk, str) else json.dumps(chunk, ensure_ascii=False)
            if named and isinstance(chunk, dict):
                yield {"event": chunk["type"], "data": data}
            else:
                yield {"data": data}

    # "\n" separators, as OpenAI sends them (sse-starlette defaults to "\r\n")
    return EventSourceResponse(
        events(), ping=PING_S, sep="\n", headers={"Cache-Control": "no-cache"}
    )
