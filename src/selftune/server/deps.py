"""Dependencies of the routes, as typed aliases: the server state and the API-key check."""

from __future__ import annotations

import hmac
from typing import Annotated

from fastapi import Depends, Request

from selftune.server.errors import APIError
from selftune.server.state import ServerState


def get_state(request: Request) -> ServerState:
    return request.app.state.selftune


def check_api_key(request: Request) -> None:
    """With an API key configured, every API call needs `Authorization: Bearer <key>`."""
    key = request.app.state.selftune.serve.api_key
    if not key:
        return
    header = request.headers.get("authorization", "")
    scheme, _, given = header.partition(" ")
    ok = scheme.lower() == "bearer" and hmac.compare_digest(
        given.strip().encode("utf-8"), key.encode("utf-8")
    )
    if not ok:
        raise APIError(
            401, "missing or wrong API key: send 'Authorization: Bearer <key>'", "invalid_api_key"
        )


OWNER_HEADER = "x-selftune-owner"


def is_owner(request: Request) -> bool:
    """Whether the owner is the one asking (their memory may then recall every conversation).
    With an API key set, every call that got this far carries the owner's key. Without one,
    the owner's web page says so with `X-Selftune-Owner: 1`: a page of another site cannot
    send a custom header (that needs CORS, off unless serve.cors_origins allows it)."""
    if request.app.state.selftune.serve.api_key:
        return True
    return request.headers.get(OWNER_HEADER, "").strip().lower() in ("1", "true", "yes")


State = Annotated[ServerState, Depends(get_state)]
Authorized = Depends(check_api_key)
