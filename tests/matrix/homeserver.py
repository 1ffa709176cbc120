"""A real Synapse homeserver for tests and benchmarks: started from the `matrix-synapse` package
(the dev extra) on 127.0.0.1 with a generated config — SQLite, a registration shared secret, rate
limits raised, no federation, nothing outbound — and stopped after.

    with Homeserver(tmp_dir) as hs:
        owner = hs.register("owner", "pw")        # {"user_id", "access_token", "device_id"}
"""

from __future__ import annotations

import atexit
import hashlib
import hmac
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx

SERVER_NAME = "selftune.test"
START_SECONDS = 90  # a cold start on a busy 2-core machine; usually 3-6 s

_LOG_CONFIG = """\
version: 1
formatters:
  plain: {format: '%(asctime)s %(name)s %(levelname)s %(message)s'}
handlers:
  file: {class: logging.FileHandler, filename: LOGFILE, formatter: plain}
root: {level: WARNING, handlers: [file]}
disable_existing_loggers: false
"""

_UNLIMITED = {"per_second": 10000, "burst_count": 10000}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def write_config(folder: Path, port: int, shared_secret: str) -> Path:
    """homeserver.yaml for a private test server in `folder` (JSON is valid YAML)."""
    import json

    (folder / "media").mkdir(parents=True, exist_ok=True)
    (folder / "log.yaml").write_text(
        _LOG_CONFIG.replace("LOGFILE", str(folder / "homeserver.log")), encoding="utf-8"
    )
    config: dict[str, Any] = {
        "server_name": SERVER_NAME,
        "public_baseurl": f"http://127.0.0.1:{port}/",
        "pid_file": str(folder / "homeserver.pid"),
        "listeners": [
            {
                "port": port,
                "bind_addresses": ["127.0.0.1"],
                "type": "http",
                "tls": False,
                "x_forwarded": False,
                "resources": [{"names": ["client"], "compress": False}],
            }
        ],
        "database": {"name": "sqlite3", "args": {"database": str(folder / "homeserver.db")}},
        "log_config": str(folder / "log.yaml"),
        "media_store_path": str(folder / "media"),
        "signing_key_path": str(folder / "signing.key"),
        "registration_shared_secret": shared_secret,
        "macaroon_secret_key": secrets.token_hex(16),
        "form_secret": secrets.token_hex(16),
        "report_stats": False,
        "bcrypt_rounds": 4,  # test passwords: fast to hash
        "enable_metrics": False,
        "url_preview_enabled": False,
        "trusted_key_servers": [],
        "suppress_key_server_warning": True,
        "federation_domain_whitelist": [],  # no federation with anyone
        "enable_registration": False,
        "presence": {"enabled": False},
        # tests log in as one user again and again: an initial /sync must not be a cached one
        "caches": {"sync_response_cache_duration": 0},
        "rc_message": _UNLIMITED,
        "rc_registration": _UNLIMITED,
        "rc_login": {
            "address": _UNLIMITED,
            "account": _UNLIMITED,
            "failed_attempts": _UNLIMITED,
        },
        "rc_joins": {"local": _UNLIMITED, "remote": _UNLIMITED},
        "rc_joins_per_room": _UNLIMITED,
        "rc_invites": {"per_room": _UNLIMITED, "per_user": _UNLIMITED, "per_issuer": _UNLIMITED},
        "rc_admin_redaction": _UNLIMITED,
        "rc_room_creation": _UNLIMITED,
    }
    _write_signing_key(folder / "signing.key")
    path = folder / "homeserver.yaml"
    path.write_text(json.dumps(config, indent=1), encoding="utf-8")
    return path


def _write_signing_key(path: Path) -> None:
    """The server's ed25519 key (written here: Synapse's own generation costs a second start)."""
    from signedjson.key import generate_signing_key, write_signing_keys

    if not path.exists():
        with open(path, "w") as f:
            write_signing_keys(f, [generate_signing_key("a")])


class Homeserver:
    """One Synapse process on loopback; `url` is its client-server API base."""

    def __init__(self, folder: Path):
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.shared_secret = secrets.token_hex(16)
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> Homeserver:
        config = write_config(self.folder, self.port, self.shared_secret)
        env = {**os.environ, "SYNAPSE_NO_TLS": "1"}
        out = open(self.folder / "stdout.log", "wb")  # noqa: SIM115 - lives as long as the process
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "synapse.app.homeserver",
                "-c",
                str(config),
            ],
            cwd=self.folder,
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,
        )
        atexit.register(self.stop)  # an interrupted test run leaves no server behind
        deadline = time.monotonic() + START_SECONDS
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"Synapse exited at start:\n{self.log_tail()}")
            try:
                if httpx.get(f"{self.url}/health", timeout=1).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        self.stop()
        raise RuntimeError(f"Synapse did not answer within {START_SECONDS} s:\n{self.log_tail()}")

    def log_tail(self, lines: int = 30) -> str:
        text = ""
        for name in ("stdout.log", "homeserver.log"):
            path = self.folder / name
            if path.exists():
                text += path.read_text(errors="replace")
        return "\n".join(text.splitlines()[-lines:])

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=5)

    def __enter__(self) -> Homeserver:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def register(self, localpart: str, password: str, admin: bool = False) -> dict[str, str]:
        """A new user through the shared-secret admin API; returns user_id, access_token."""
        endpoint = f"{self.url}/_synapse/admin/v1/register"
        nonce = httpx.get(endpoint, timeout=10).json()["nonce"]
        mac = hmac.new(self.shared_secret.encode(), digestmod=hashlib.sha1)
        mac.update(
            b"\x00".join(
                [
                    nonce.encode(),
                    localpart.encode(),
                    password.encode(),
                    b"admin" if admin else b"notadmin",
                ]
            )
        )
        reply = httpx.post(
            endpoint,
            json={
                "nonce": nonce,
                "username": localpart,
                "password": password,
                "admin": admin,
                "mac": mac.hexdigest(),
            },
            timeout=30,
        )
        reply.raise_for_status()
        return reply.json()


class User:
    """A plain client-server API caller for the test's contacts (the real protocol, over HTTP)."""

    def __init__(self, url: str, account: dict[str, str]):
        self.url = url
        self.user_id = account["user_id"]
        self.token = account["access_token"]
        self._txn = 0

    def call(self, method: str, path: str, body: dict[str, Any] | None = None, **params: Any):
        reply = httpx.request(
            method,
            f"{self.url}/_matrix/client/v3{path}",
            json=body,
            params=params or None,
            headers={"Authorization": f"Bearer {self.token}"},
            timeout=30,
        )
        if reply.status_code >= 400:
            raise RuntimeError(f"{method} {path}: {reply.status_code} {reply.text}")
        return reply.json()

    def set_name(self, name: str) -> None:
        self.call("PUT", f"/profile/{self.user_id}/displayname", {"displayname": name})

    def create_room(self, invite: list[str], name: str | None = None, direct: bool = False) -> str:
        body: dict[str, Any] = {"invite": invite, "is_direct": direct, "preset": "private_chat"}
        if name:
            body["name"] = name
        return self.call("POST", "/createRoom", body)["room_id"]

    def join(self, room_id: str) -> None:
        self.call("POST", f"/join/{room_id}", {})

    def send(
        self, room_id: str, content: dict[str, Any], event_type: str = "m.room.message"
    ) -> str:
        self._txn += 1
        path = f"/rooms/{room_id}/send/{event_type}/t{time.time_ns()}-{self._txn}"
        return self.call("PUT", path, content)["event_id"]

    def say(self, room_id: str, text: str) -> str:
        return self.send(room_id, {"msgtype": "m.text", "body": text})

    def edit(self, room_id: str, event_id: str, text: str) -> str:
        return self.send(
            room_id,
            {
                "msgtype": "m.text",
                "body": f"* {text}",
                "m.new_content": {"msgtype": "m.text", "body": text},
                "m.relates_to": {"rel_type": "m.replace", "event_id": event_id},
            },
        )

    def redact(self, room_id: str, event_id: str) -> str:
        self._txn += 1
        path = f"/rooms/{room_id}/redact/{event_id}/r{time.time_ns()}-{self._txn}"
        return self.call("PUT", path, {"reason": "test"})["event_id"]

    def put_state(self, room_id: str, event_type: str, state_key: str, content: dict[str, Any]):
        return self.call("PUT", f"/rooms/{room_id}/state/{event_type}/{state_key}", content)

    def messages(self, room_id: str, limit: int = 50) -> list[dict[str, Any]]:
        """The room's latest events, newest first."""
        return self.call("GET", f"/rooms/{room_id}/messages", dir="b", limit=limit)["chunk"]
