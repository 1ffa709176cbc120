"""The FastAPI application: API routers, the web page's static files, security settings."""

from __future__ import annotations

import ipaddress
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import FastAPI
from fastapi.responses import FileResponse
from fastapi.staticfiles import StaticFiles

from selftune import __version__
from selftune.errors import SelftuneError
from selftune.server.errors import install_error_handlers
from selftune.server.routes import openai, twin
from selftune.server.state import ServerState

STATIC = Path(__file__).parent / "static"


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_bind(host: str, api_key: str | None) -> None:
    """Refuse to listen beyond this machine without an API key."""
    if not is_loopback(host) and not api_key:
        raise SelftuneError(
            f"binding {host} would expose your twin to the network; set serve.api_key in "
            "twin.yaml (or --api-key / SELFTUNE_API_KEY), or bind 127.0.0.1"
        )


def create_app(state: ServerState) -> FastAPI:
    @asynccontextmanager
    async def lifespan(app: FastAPI):  # type: ignore[no-untyped-def]
        yield
        state.close()

    app = FastAPI(title="selftune", version=__version__, lifespan=lifespan)
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
    app.include_router(openai.router)
    app.include_router(twin.router)

    @app.get("/", include_in_schema=False)
    def page() -> FileResponse:
        return FileResponse(STATIC / "index.html")

    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    return app
