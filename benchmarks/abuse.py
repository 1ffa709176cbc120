"""Hardening figures for docs/security.md: the server on 127.0.0.1 with the embedded model
(transformers engine) under bad input and load, in one run.

1. a 20 MB body (413?), and the process's memory around it;
2. an 8,000-word prompt (400 before queueing?), then how long a normal request waits after it;
3. C concurrent clients (status codes; any 500 is a failure);
4. memory over R sequential requests;
5. the stream guard's cost per streamed piece at 1,000 pieces, next to no guard.

    PYTHONPATH=src python benchmarks/abuse.py                 # the recorded run
    PYTHONPATH=src python benchmarks/abuse.py --clients 20 --requests 50

Run `uptime` first: the CPU is shared on the dev machine.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import socket
import threading
import time
from collections import Counter


def rss_mb() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return round(int(line.split()[1]) / 1024, 1)
    return 0.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(engine: str):  # type: ignore[no-untyped-def]
    import uvicorn

    from selftune.config import BuildConfig, ServeConfig
    from selftune.engines import model_catalog
    from selftune.server import ServerState, create_app

    state = ServerState(
        catalog=model_catalog(None, "embedded"),
        serve=ServeConfig(engine=engine, log_samples=False, queue_size=64),
        build=BuildConfig(private_facts=["my locker code is 739204"]),
        me=["Mags"],
    )
    state.batcher("twin")
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(create_app(state), host="127.0.0.1", port=port, log_level="error")
    )
    threading.Thread(target=server.run, daemon=True).start()
    while not server.started:
        time.sleep(0.05)
    return server, f"http://127.0.0.1:{port}"


def timed(client, path: str, **kwargs):  # type: ignore[no-untyped-def]
    started = time.perf_counter()
    r = client.post(path, **kwargs)
    return r.status_code, round(time.perf_counter() - started, 3), r


def main() -> None:
    import httpx

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--engine", default="transformers")
    parser.add_argument("--clients", type=int, default=100)
    parser.add_argument("--requests", type=int, default=300)
    args = parser.parse_args()
    out: dict = {"load_average_start": os.getloadavg()}
    server, url = start_server(args.engine)
    small = {"prompt": "Dear diary,", "max_tokens": 4}
    with httpx.Client(base_url=url, timeout=300) as client:
        client.post("/v1/completions", json=small)  # warm up
        before = rss_mb()
        code, seconds, _ = timed(
            client,
            "/v1/completions",
            content=b'{"prompt": "' + b"x" * 20_000_000 + b'"}',
            headers={"content-type": "application/json"},
        )
        out["body_20MB"] = {"status": code, "seconds": seconds, "rss_mb": [before, rss_mb()]}
        words = " ".join(
            random.Random(0).choice(["bees", "honey", "tide", "jar"]) for _ in range(8000)
        )
        code, seconds, r = timed(client, "/v1/completions", json={"prompt": words})
        _, after, _ = timed(client, "/v1/completions", json=small)
        out["prompt_8000_words"] = {
            "status": code,
            "code": r.json()["error"]["code"] if code != 200 else None,
            "seconds": seconds,
            "next_request_seconds": after,
        }

    codes: Counter[int] = Counter()
    latencies: list[float] = []

    def one(i: int) -> None:
        with httpx.Client(base_url=url, timeout=300) as c:
            code, seconds, _ = timed(c, "/v1/completions", json={**small, "prompt": f"Day {i}:"})
            codes[code] += 1
            latencies.append(seconds)

    started = time.perf_counter()
    threads = [threading.Thread(target=one, args=(i,)) for i in range(args.clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    latencies.sort()
    out["concurrent"] = {
        "clients": args.clients,
        "status": dict(codes),
        "wall_s": round(time.perf_counter() - started, 2),
        "p50_s": latencies[len(latencies) // 2],
        "max_s": latencies[-1],
    }
    with httpx.Client(base_url=url, timeout=300) as client:
        before = rss_mb()
        statuses: Counter[int] = Counter()
        for i in range(args.requests):
            statuses[
                client.post("/v1/completions", json={**small, "prompt": f"{i}"}).status_code
            ] += 1
        out["sequential"] = {
            "requests": args.requests,
            "status": dict(statuses),
            "rss_mb": [before, rss_mb()],
        }
    server.should_exit = True
    out["stream_guard"] = stream_guard_cost()
    out["load_average_end"] = os.getloadavg()
    print(json.dumps(out, indent=2))


def stream_guard_cost() -> dict:
    from selftune.guards import GuardedStream, OutputGuard

    words = [
        "the",
        "bees",
        "were",
        "busy",
        "today",
        "and",
        "i",
        "went",
        "to",
        "the",
        "market",
        "for",
        "honey",
        "42",
        "jars",
    ]
    rng = random.Random(0)
    pieces = [rng.choice(words) + " " for _ in range(1000)]
    result = {}
    for name, guard in (
        ("guard", OutputGuard(["my locker code is 739204"])),
        ("off", OutputGuard(enabled=False)),
    ):
        started = time.perf_counter()
        stream = GuardedStream(guard)
        for p in pieces:
            stream.feed(p)
        stream.finish()
        result[f"{name}_us_per_piece"] = round(
            (time.perf_counter() - started) / len(pieces) * 1e6, 1
        )
    return result


if __name__ == "__main__":
    main()
