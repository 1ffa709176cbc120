"""Serving benchmark, side by side in one run, same GGUF (the embedded SmolLM2-135M-Instruct Q4_1),
same machine, same client, one target after the other:

- selftune `auto` (llama.cpp engine, continuous batching) and selftune `transformers`, each a
  `selftune`-style server in its own process;
- llama-cpp-python used directly in this process (single stream and n sequential only: its
  high-level API runs one sequence at a time);
- llama-server -np 8 (llama.cpp's own server, built by benchmarks/setup_llama_server.sh);
- the roof: llama-batched-bench (same sources, same script), every sequence decoded in one
  llama_decode with no sampling, no detokenising and no HTTP: decode tokens/s at B = 1, 8, 16, 32.

Measured: single stream (TTFT, decode tokens/s, streamed over HTTP), n = 8 × 128 tokens in one
request vs 8 sequential requests, 8 and 32 concurrent clients (aggregate tokens/s, p50/p95
latency, status codes), and the server's RSS over a soak of 8 clients. Beside each target, its
share of the roof at the same batch size.

    PYTHONPATH=src python benchmarks/serve.py                       # the recorded run
    PYTHONPATH=src python benchmarks/serve.py --quick               # a smoke run (~2 min)
    PYTHONPATH=src python benchmarks/serve.py --targets auto,llama-server --soak 0

The load average is recorded before and after every block: the dev machine is shared.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

import httpx

PROMPT_TEXT = "Write a long list of ideas for my next tattoo, one per line, with a reason for each."
SAMPLING = {"temperature": 0.8, "top_p": 0.95}


def load() -> float:
    return round(os.getloadavg()[0], 2)


def cpu_kind() -> str:
    """The CPU's model name, and whether it has AVX-512 BF16."""
    info = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").exists() else ""
    name = next((ln.split(":", 1)[1].strip() for ln in info.splitlines()
                 if ln.startswith("model name")), "unknown")  # fmt: skip
    return f"{name}, avx512_bf16: {'avx512_bf16' in info}"


def rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return round(int(line.split()[1]) / 1024, 1)
    return 0.0


# -- servers --------------------------------------------------------------------------------


def serve_selftune(engine: str, port: int, threads: int | None) -> None:
    """Server mode (a child process): the selftune server on the embedded model."""
    import uvicorn

    from selftune.config import ServeConfig
    from selftune.engines import ModelSpec
    from selftune.server import ServerState, create_app

    # "auto-unguarded": the same server with the output guard off, to tell the guard's share
    # of the time to first token from the engine's and the HTTP layer's
    guarded = not engine.endswith("-unguarded")
    engine = engine.removesuffix("-unguarded")
    settings = ServeConfig(
        engine=engine, max_batch=16, queue_size=128, timeout_s=900, threads=threads,
        guard_output=guarded,
    )  # fmt: skip
    if engine == "transformers" and threads:
        import torch

        torch.set_num_threads(threads)
    state = ServerState(catalog={"twin": ModelSpec("twin", "embedded")}, serve=settings)
    state.scheduler("twin")
    print(f"ready {state.engine_choice('twin').describe()}", flush=True)
    uvicorn.run(create_app(state), host="127.0.0.1", port=port, log_level="warning")


def llama_server_binary(name: str = "llama-server") -> str | None:
    env = "SELFTUNE_" + name.upper().replace("-", "_")  # SELFTUNE_LLAMA_SERVER, ..._BATCHED_BENCH
    for c in (
        os.environ.get(env, ""),
        str(Path.home() / f".cache/selftune/llama-server/bin/{name}"),
        shutil.which(name) or "",
    ):
        if c and Path(c).exists():
            return c
    return None


def roof(threads: int, tokens: int, batches: str = "1,8,16,32") -> dict:
    """llama-batched-bench on the same GGUF: decode tokens/s (S_TG) per batch size B."""
    from selftune.models import embedded_gguf_path

    binary = llama_server_binary("llama-batched-bench")
    assert binary is not None
    cmd = [binary, "-m", str(embedded_gguf_path()), "-c", "8192", "-npp", "32", "-ntg",
           str(tokens), "-npl", batches, "-t", str(threads), "-fa", "on", "-kvu"]  # fmt: skip
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=1800).stdout
    table = {}
    for line in out.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 10 and cells[2].isdigit():
            table[f"B{cells[2]}"] = float(cells[7])  # S_TG t/s
    return {"decode_tok_s": table, "command": " ".join(cmd[1:])}


def shares(report: dict) -> dict:
    """Each target's aggregate against the roof at the same batch size (and llama-server)."""
    roof_tg = report["targets"].get("roof", {}).get("decode_tok_s", {})
    out: dict = {}
    for name, t in report["targets"].items():
        if name == "roof":
            continue
        row = {}
        single = (t.get("single_stream") or {}).get("decode_tok_s")
        if single and roof_tg.get("B1"):
            row["single_vs_roof_B1"] = round(single / roof_tg["B1"], 2)
        at_once = (t.get("n_at_once") or {}).get("at_once_tok_s")
        if at_once and roof_tg.get("B8"):
            row["n8_vs_roof_B8"] = round(at_once / roof_tg["B8"], 2)
        for count in (8, 16, 32):
            agg = (t.get(f"clients_{count}") or {}).get("tok_s")
            if agg and roof_tg.get(f"B{count}"):
                row[f"clients{count}_vs_roof_B{count}"] = round(agg / roof_tg[f"B{count}"], 2)
            server = report["targets"].get("llama-server", {}).get(f"clients_{count}") or {}
            if agg and server.get("tok_s") and name != "llama-server":
                row[f"clients{count}_vs_llama_server"] = round(agg / server["tok_s"], 2)
        out[name] = row
    return out


def start(target: str, port: int, threads: int) -> subprocess.Popen:
    from selftune.models import embedded_gguf_path

    if target == "llama-server":
        binary = llama_server_binary()
        assert binary is not None
        cmd = [binary, "-m", str(embedded_gguf_path()), "--host", "127.0.0.1", "--port",
               str(port), "-np", "8", "-c", "8192", "-t", str(threads), "-tb", str(threads)]  # fmt: skip
    else:
        cmd = [sys.executable, __file__, "--serve-target", target, "--port", str(port),
               "--threads", str(threads)]  # fmt: skip
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline:
        try:
            # llama-server lists its model before it has loaded it; /health says when it has
            ready = "/health" if target == "llama-server" else "/v1/models"
            if httpx.get(f"http://127.0.0.1:{port}{ready}", timeout=2).status_code == 200:
                return proc
        except httpx.HTTPError:
            pass
        if proc.poll() is not None:
            raise RuntimeError(f"{target} exited with {proc.returncode}")
        time.sleep(0.5)
    raise RuntimeError(f"{target} did not start")


# -- client ---------------------------------------------------------------------------------


async def completion(http, url, prompt, max_tokens, seed, n=1, stream=False):  # type: ignore[no-untyped-def]
    """(seconds, completion tokens, status, time to first token) of one /v1/completions call."""
    body = {"model": "twin", "prompt": prompt, "max_tokens": max_tokens, "n": n, "seed": seed}
    body |= SAMPLING
    started = time.perf_counter()
    if not stream:
        r = await http.post(url + "/v1/completions", json=body)
        took = time.perf_counter() - started
        if r.status_code != 200:
            return took, 0, r.status_code, None
        return took, r.json()["usage"]["completion_tokens"], 200, None
    body |= {"stream": True, "stream_options": {"include_usage": True}}
    first, tokens, chunks = None, None, 0
    async with http.stream("POST", url + "/v1/completions", json=body) as r:
        async for line in r.aiter_lines():
            if not line.startswith("data: ") or line == "data: [DONE]":
                continue
            chunk = json.loads(line[6:])
            if chunk.get("usage"):
                tokens = chunk["usage"]["completion_tokens"]
            if any(c.get("text") for c in chunk.get("choices") or []):
                first = first or time.perf_counter()
                chunks += 1
    return (
        time.perf_counter() - started,
        tokens or chunks,
        r.status_code,
        first - started if first else None,
    )


async def single_stream(url: str, prompt: str, tokens: int) -> dict:
    async with httpx.AsyncClient(timeout=900) as http:
        await completion(http, url, prompt, 4, 0)  # warm up
        took, n, _, ttft = await completion(http, url, prompt, tokens, 1, stream=True)
    return {"tokens": n, "ttft_s": round(ttft or 0, 3),
            "decode_tok_s": round((n - 1) / (took - ttft), 1) if ttft and n > 1 else None,
            "total_s": round(took, 2)}  # fmt: skip


async def n_vs_sequential(url: str, prompt: str, n: int, tokens: int, as_requests: bool) -> dict:
    """n candidates at once (one request, or n concurrent requests where the server has no n)
    vs n requests one after another."""
    async with httpx.AsyncClient(timeout=900) as http:
        started = time.perf_counter()
        if as_requests:
            outs = await asyncio.gather(
                *(completion(http, url, prompt, tokens, s) for s in range(n))
            )
            batched_tokens = sum(o[1] for o in outs)
        else:
            batched_tokens = (await completion(http, url, prompt, tokens, 0, n=n))[1]
        batched = time.perf_counter() - started
        started, seq_tokens = time.perf_counter(), 0
        for s in range(n):
            seq_tokens += (await completion(http, url, prompt, tokens, 100 + s))[1]
        sequential = time.perf_counter() - started
    return {"at_once_s": round(batched, 2), "at_once_tokens": batched_tokens,
            "at_once_tok_s": round(batched_tokens / batched, 1),
            "sequential_s": round(sequential, 2), "sequential_tokens": seq_tokens,
            "speedup": round((sequential / max(seq_tokens, 1)) / (batched / max(batched_tokens, 1)), 2)}  # fmt: skip


async def clients(url: str, prompt: str, count: int, seconds: float, tokens: int, pid=None) -> dict:  # type: ignore[no-untyped-def]
    latencies: list[float] = []
    codes: dict[int, int] = {}
    done_tokens = 0
    memory: list[float] = []
    stop_at = time.monotonic() + seconds

    async def client(i: int, http: httpx.AsyncClient) -> None:
        nonlocal done_tokens
        k = 0
        while time.monotonic() < stop_at:
            took, n, code, _ = await completion(http, url, prompt, tokens, 1000 * i + k)
            k += 1
            codes[code] = codes.get(code, 0) + 1
            if code == 200:
                latencies.append(took)
                done_tokens += n
            elif code == 429:
                await asyncio.sleep(1)

    async def watch_memory() -> None:
        while time.monotonic() < stop_at:
            memory.append(rss_mb(pid))
            await asyncio.sleep(5)

    limits = httpx.Limits(max_connections=count + 4)
    async with httpx.AsyncClient(timeout=900, limits=limits) as http:
        started = time.perf_counter()
        watchers = [watch_memory()] if pid else []
        await asyncio.gather(*(client(i, http) for i in range(count)), *watchers)
        wall = time.perf_counter() - started
    q = statistics.quantiles(latencies, n=20) if len(latencies) >= 2 else [0.0] * 19
    out = {"clients": count, "wall_s": round(wall, 1), "codes": codes, "completed": len(latencies),
           "tok_s": round(done_tokens / wall, 1), "req_s": round(len(latencies) / wall, 2),
           "p50_s": round(statistics.median(latencies), 2) if latencies else None,
           "p95_s": round(q[18], 2)}  # fmt: skip
    if memory:
        out["rss_mb"] = {"first": memory[0], "mid": memory[len(memory) // 2], "last": memory[-1],
                         "max": max(memory), "samples": len(memory)}  # fmt: skip
    return out


# -- llama-cpp-python, in this process -------------------------------------------------------


def direct(prompt: str, tokens: int, n: int, threads: int) -> dict:
    from llama_cpp import Llama

    from selftune.models import embedded_gguf_path

    llm = Llama(model_path=str(embedded_gguf_path()), n_ctx=2048, n_threads=threads,
                n_threads_batch=threads, verbose=False)  # fmt: skip
    llm.create_completion(prompt, max_tokens=4, temperature=0)
    started, first, count = time.perf_counter(), None, 0
    for _ in llm.create_completion(prompt, max_tokens=tokens, seed=1, stream=True, **SAMPLING):
        first = first or time.perf_counter()
        count += 1
    end = time.perf_counter()
    single = {"tokens": count, "ttft_s": round((first or end) - started, 3),
              "decode_tok_s": round((count - 1) / (end - first), 1) if first and count > 1 else None,
              "total_s": round(end - started, 2)}  # fmt: skip
    started, seq_tokens = time.perf_counter(), 0
    for s in range(n):
        out = llm.create_completion(prompt, max_tokens=tokens, seed=100 + s, **SAMPLING)
        seq_tokens += out["usage"]["completion_tokens"]
    sequential = time.perf_counter() - started
    return {"single_stream": single, "n_sequential": {
        "sequential_s": round(sequential, 2), "sequential_tokens": seq_tokens,
        "sequential_tok_s": round(seq_tokens / sequential, 1)}}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--targets", default="auto,transformers,direct,llama-server,roof")
    parser.add_argument("--tokens", type=int, default=128)
    parser.add_argument("--n", type=int, default=8)
    parser.add_argument("--clients", default="8,32")
    parser.add_argument("--seconds", type=float, default=30)
    parser.add_argument("--load-tokens", type=int, default=32)
    parser.add_argument("--soak", type=float, default=300, help="seconds of 8 clients on auto")
    parser.add_argument("--threads", type=int, default=os.cpu_count(),
                        help="CPU threads for every engine (the same for all)")  # fmt: skip
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--out", type=Path, help="also write the report as JSON here")
    parser.add_argument("--serve-target", help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, default=8765, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve_target:
        return serve_selftune(args.serve_target, args.port, args.threads)
    if args.quick:
        args.tokens, args.seconds, args.soak, args.clients = 32, 8, 20, "8"

    from selftune.engines import render_chat
    from selftune.models import load_tokenizer

    prompt = render_chat(load_tokenizer("embedded"), [{"role": "user", "content": PROMPT_TEXT}])
    report: dict = {"started": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
                    "cpus": os.cpu_count(), "threads": args.threads,
                    "load_before": os.getloadavg(), "targets": {}}  # fmt: skip
    targets = args.targets.split(",")
    for target, binary in (("llama-server", "llama-server"), ("roof", "llama-batched-bench")):
        if target in targets and llama_server_binary(binary) is None:
            print(f"{binary} not built (benchmarks/setup_llama_server.sh); skipped", flush=True)
            targets.remove(target)
    for port, target in enumerate(targets, start=args.port):
        out: dict = {"load_before": load()}
        if target == "roof":
            out |= roof(args.threads, args.tokens)
            print(target, out, load(), flush=True)
        elif target == "direct":
            out |= direct(prompt, args.tokens, args.n, args.threads)
        else:
            proc = start(target, port, args.threads)
            url = f"http://127.0.0.1:{port}"
            try:
                out["single_stream"] = asyncio.run(single_stream(url, prompt, args.tokens))
                print(target, "single", out["single_stream"], load(), flush=True)
                many = target == "llama-server"
                out["n_at_once"] = asyncio.run(
                    n_vs_sequential(url, prompt, args.n, args.tokens, many)
                )
                print(target, "n", out["n_at_once"], load(), flush=True)
                for count in [int(c) for c in args.clients.split(",")]:
                    run = asyncio.run(
                        clients(url, prompt, count, args.seconds, args.load_tokens, proc.pid)
                    )
                    run["load"] = load()
                    out[f"clients_{count}"] = run
                    print(target, count, "clients", run, flush=True)
                if target == "auto" and args.soak:
                    soak = asyncio.run(
                        clients(url, prompt, 8, args.soak, args.load_tokens, proc.pid)
                    )
                    soak["load"] = load()
                    out["soak"] = soak
                    print(target, "soak", soak, flush=True)
            finally:
                proc.terminate()
                proc.wait(timeout=30)
        out["load_after"] = load()
        report["targets"][target] = out
        print(target, "done", flush=True)
    report["load_after"] = os.getloadavg()
    report["shares"] = shares(report)
    report["cpu"] = cpu_kind()
    text = json.dumps(report, indent=2)
    print(text)
    if args.out:
        args.out.write_text(text)


if __name__ == "__main__":
    main()
