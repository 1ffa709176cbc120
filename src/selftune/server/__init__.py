"""The twin's HTTP server: an OpenAI-compatible API, the twin's own routes and the web page."""

from selftune.server.app import check_bind, create_app
from selftune.server.state import ServerState

__all__ = ["ServerState", "check_bind", "create_app"]
