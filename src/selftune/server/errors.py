"""Errors in OpenAI's shape (`{"error": {"message", "type", "param", "code"}}`) with the status
codes OpenAI clients expect; a SelftuneError anywhere becomes one of these at the boundary."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException

from selftune.errors import SelftuneError
from selftune.server.scheduler import QueueFull
from selftune.server.state import UnknownModel

TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "invalid_request_error",  # OpenAI's type for an unknown model too
    408: "timeout_error",
    413: "invalid_request_error",
    429: "rate_limit_error",
    499: "cancelled",
    500: "server_error",
    504: "timeout_error",
}


class APIError(Exception):
    def __init__(
        self, status: int, message: str, code: str | None = None, param: str | None = None
    ):
        super().__init__(message)
        self.status, self.message, self.code, self.param = status, message, code, param


def error_body(status: int, message: str, code: str | None = None, param: str | None = None):
    return {
        "error": {
            "message": message,
            "type": TYPES.get(status, "invalid_request_error"),
            "param": param,
            "code": code,
        }
    }


def error_response(status: int, message: str, code: str | None = None, param: str | None = None):
    headers = {"Retry-After": "1"} if status == 429 else None
    return JSONResponse(
        error_body(status, message, code, param), status_code=status, headers=headers
    )


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(APIError)
    async def _api(request: Request, exc: APIError):  # type: ignore[no-untyped-def]
        return error_response(exc.status, exc.message, exc.code, exc.param)

    @app.exception_handler(UnknownModel)
    async def _model(request: Request, exc: UnknownModel):  # type: ignore[no-untyped-def]
        return error_response(404, str(exc), "model_not_found", "model")

    @app.exception_handler(QueueFull)
    async def _busy(request: Request, exc: QueueFull):  # type: ignore[no-untyped-def]
        return error_response(429, f"the twin is busy ({exc}); retry shortly", "queue_full")

    @app.exception_handler(SelftuneError)
    async def _selftune(request: Request, exc: SelftuneError):  # type: ignore[no-untyped-def]
        return error_response(400, str(exc))

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError):  # type: ignore[no-untyped-def]
        status, message, param = validation_error(exc.errors())
        return error_response(status, message, None, param)

    @app.exception_handler(HTTPException)
    async def _http(request: Request, exc: HTTPException):  # type: ignore[no-untyped-def]
        return error_response(exc.status_code, str(exc.detail))


def validation_error(errors: Any) -> tuple[int, str, str | None]:
    """(status, message, param) for FastAPI's validation errors, in OpenAI's terms: a body that
    is not JSON has no param; a field is named as OpenAI names it (`messages.[0].role`)."""
    first = errors[0] if errors else {}
    if first.get("type") == "json_invalid":
        where = first.get("loc", ["body", "?"])[-1]
        why = (first.get("ctx") or {}).get("error", "invalid JSON")
        return 400, f"the request body is not valid JSON ({why} at character {where})", None
    parts = []
    for part in first.get("loc", []):
        if part == "body" and not parts:
            continue
        if isinstance(part, int):
            parts.append(f"[{part}]")
        elif part in ("str", "list", "dict", "int", "float", "bool") or "[" in str(part):
            continue  # pydantic names the branch of a union it tried; not a field
        else:
            parts.append(str(part))
    param = ".".join(parts) or None
    if not param and first.get("type") == "missing":
        return 400, "the request needs a JSON body", None
    return 400, f"{param or 'request'}: {first.get('msg', 'invalid')}", param
