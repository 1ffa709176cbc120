"""The FastAPI application: API routers, the web page's static files, security settings
(the Host check and body limit in `middleware`, the key in `deps`)."""

from __future__ import annotations

from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import FastAPI
from fastapi.responses import FileResponse, JSONResponse
from fastapi.staticfiles import StaticFiles

from selftune import __version__
from selftune.config import is_loopback
from selftune.errors import SelftuneError
from selftune.server.deps import Authorized
from selftune.server.errors import install_error_handlers
from selftune.server.middleware import Guardrails
from selftune.server.routes import improve, openai, responses, twin
from selftune.server.state import ServerState

STATIC = Path(__file__).parent / "static"


MIN_API_KEY_LENGTH = 16


def check_bind(host: str, api_key: str | None) -> None:
    """Refuse to listen beyond this machine without an API key, and refuse a guessable key."""
    if api_key is not None and len(api_key.strip()) < MIN_API_KEY_LENGTH:
        raise SelftuneError(
            f"the API key has {len(api_key.strip())} characters; use at least "
            f"{MIN_API_KEY_LENGTH} (e.g. `openssl rand -hex 16`)"
        )
    if not is_loopback(host) and not api_key:
        raise SelftuneError(
            f"binding {host} would expose your twin to the network; set serve.api_key in "
            "twin.yaml (or SELFTUNE_API_KEY, or --api-key-file FILE), or bind 127.0.0.1"
        )


def create_app(state: ServerState) -> FastAPI:
    @asynccontextmanager
    async def lifespan(app: FastAPI):  # type: ignore[no-untyped-def]
        yield
        state.close()

    # no /docs or /redoc: FastAPI's pages load Swagger UI from a CDN, an outbound call this
    # server never makes; the schema itself is behind the key at /openapi.json
    app = FastAPI(
        title="selftune",
        version=__version__,
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
    )
    app.state.selftune = state
    install_error_handlers(app)
    if state.serve.cors_origins:
        from fastapi.middleware.cors import CORSMiddleware

        app.add_middleware(
            CORSMiddleware,
            allow_origins=state.serve.cors_origins,
            allow_methods=["GET", "POST"],
            # any request header from an allowed origin: X-Selftune-Unattended (Roam SmartBlock),
            # the OpenAI SDK's x-stainless-* (a list that grows with each SDK release)
            allow_headers=["*"],
        )
    app.add_middleware(
        Guardrails,
        max_body_bytes=state.serve.max_body_bytes,
        check_host=not state.serve.api_key,
        body_timeout_s=state.serve.body_timeout_s,
        max_receiving=state.serve.max_receiving,
    )
    app.include_router(openai.router)
    app.include_router(responses.router)
    app.include_router(twin.router)
    app.include_router(improve.router)

    @app.get("/openapi.json", include_in_schema=False, dependencies=[Authorized])
    def schema() -> JSONResponse:
        return JSONResponse(app.openapi())

    @app.get("/", include_in_schema=False)
    def page() -> FileResponse:
        return FileResponse(STATIC / "index.html")

    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    return app
