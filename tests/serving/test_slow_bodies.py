"""Slow bodies on a real uvicorn (raw sockets on 127.0.0.1): one deadline for the whole body, and
a cap on how many requests may still be sending one."""

from __future__ import annotations

import socket
import time

from tests.serving.conftest import LiveServer

from selftune.config import ServeConfig
from selftune.server import ServerState, create_app

HEAD = (
    b"POST /v1/completions HTTP/1.1\r\nHost: 127.0.0.1\r\n"
    b"Content-Type: application/json\r\nContent-Length: 200\r\n\r\n"
)


def _app(**serve):  # type: ignore[no-untyped-def]
    return create_app(ServerState(catalog={}, serve=ServeConfig(**serve)))


def test_a_body_sent_a_byte_at_a_time_meets_one_deadline():
    live = LiveServer(_app(body_timeout_s=1.0))
    with live, socket.create_connection(("127.0.0.1", live.port), 10) as s:
        s.settimeout(0.25)
        s.sendall(HEAD)
        started, answer = time.monotonic(), b""
        while time.monotonic() - started < 6 and not answer:
            try:
                s.sendall(b" ")  # a byte every quarter second: each chunk is on time
                answer = s.recv(4096)
            except TimeoutError:
                continue
            except OSError:
                break
        took = time.monotonic() - started
    assert answer.startswith(b"HTTP/1.1 408"), answer[:80]
    assert took < 3, took  # the whole body's deadline, not one per chunk (200 bytes = 50 s)


def test_connections_still_sending_a_body_are_capped():
    with LiveServer(_app(max_receiving=3, body_timeout_s=20)) as live:
        slow = [socket.create_connection(("127.0.0.1", live.port), 10) for _ in range(3)]
        try:
            for s in slow:
                s.sendall(HEAD + b'{"pro')
            time.sleep(0.5)  # they are all waiting for the rest of their bodies
            with socket.create_connection(("127.0.0.1", live.port), 10) as extra:
                extra.settimeout(5)
                extra.sendall(HEAD + b"x" * 200)
                answer = extra.recv(4096)
            assert answer.startswith(b"HTTP/1.1 503"), answer[:80]
        finally:
            for s in slow:
                s.close()
        time.sleep(0.5)  # the slow ones went away: a body is read again
        with socket.create_connection(("127.0.0.1", live.port), 10) as again:
            again.settimeout(5)
            again.sendall(HEAD + b"{" * 200)
            answer = again.recv(4096)
        assert not answer.startswith(b"HTTP/1.1 503"), answer[:80]
