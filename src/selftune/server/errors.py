"""Errors in OpenAI's shape (`{"error": {"message", "type", "param", "code"}}`) with the status
codes OpenAI clients expect; a SelftuneError anywhere becomes one of these at the boundary."""

from __future__ import annotations

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
    404: "not_found_error",
    408: "timeout_error",
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
        first = exc.errors()[0] if exc.errors() else {}
        loc = [str(p) for p in first.get("loc", []) if p != "body"]
        where = ".".join(loc) or None
        return error_response(
            400, f"{where or 'request'}: {first.get('msg', 'invalid')}", None, where
        )

    @app.exception_handler(HTTPException)
    async def _http(request: Request, exc: HTTPException):  # type: ignore[no-untyped-def]
        return error_response(exc.status_code, str(exc.detail))
