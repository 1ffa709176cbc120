"""Serving benchmark, all in one run on the embedded model (SmolLM2-135M-Instruct, its Q4_1 GGUF):

1. single stream: time to first token and decode tokens/s for each engine, next to
   llama-cpp-python used directly (`Llama.create_completion(stream=True)`) on the same GGUF;
2. n = 8 candidates of 128 tokens in one request vs 8 sequential requests, per engine;
3. load: C concurrent clients against the real server on loopback for S seconds: status codes,
   p50/p95 latency, throughput, and the process's memory at the start and the end.

    PYTHONPATH=src python benchmarks/serve.py                  # the recorded run
    PYTHONPATH=src python benchmarks/serve.py --quick          # fewer tokens, a short load test
    PYTHONPATH=src python benchmarks/serve.py --load-engine transformers --clients 32 --seconds 60

Run `uptime` first: the CPU is shared on the dev machine.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import threading
import time

PROMPT_TEXT = "Write a long list of ideas for my next tattoo, one per line, with a reason for each."


def rss_mb() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def single_stream(engine, prompt: str, tokens: int) -> dict:  # type: ignore[no-untyped-def]
    from selftune.engines import GenRequest

    times: list[float] = []
    started = time.perf_counter()
    request = GenRequest(
        prompt, 1, 0.0, 1.0, tokens, on_text=lambda i, t: times.append(time.perf_counter())
    )
    result = engine.generate([request])[0]
    end = time.perf_counter()
    n = result.completion_tokens[0]
    ttft = (times[0] if times else end) - started
    return {
        "tokens": n,
        "ttft_s": round(ttft, 3),
        "decode_tok_s": round((n - 1) / (end - started - ttft), 1) if n > 1 else None,
        "total_s": round(end - started, 2),
    }


def llama_direct(gguf: str, prompt: str, tokens: int) -> dict:
    from llama_cpp import Llama

    llm = Llama(model_path=gguf, n_ctx=2048, n_threads=os.cpu_count(), verbose=False)
    llm.create_completion(prompt, max_tokens=4, temperature=0)  # warm up like the engines
    started = time.perf_counter()
    first, n = None, 0
    for _ in llm.create_completion(prompt, max_tokens=tokens, temperature=0, stream=True):
        first = first or time.perf_counter()
        n += 1
    end = time.perf_counter()
    ttft = (first or end) - started
    return {
        "tokens": n,
        "ttft_s": round(ttft, 3),
        "decode_tok_s": round((n - 1) / (end - first), 1) if first and n > 1 else None,
        "total_s": round(end - started, 2),
    }


def n_vs_sequential(engine, prompt: str, n: int, tokens: int) -> dict:  # type: ignore[no-untyped-def]
    from selftune.engines import GenRequest

    started = time.perf_counter()
    batched = engine.generate([GenRequest(prompt, n, 0.8, 0.95, tokens, seed=1)])[0]
    batched_s = time.perf_counter() - started
    started = time.perf_counter()
    seq_tokens = 0
    for i in range(n):
        seq_tokens += sum(
            engine.generate([GenRequest(prompt, 1, 0.8, 0.95, tokens, seed=i)])[0].completion_tokens
        )
    seq_s = time.perf_counter() - started
    return {
        "batched_s": round(batched_s, 2),
        "batched_tokens": sum(batched.completion_tokens),
        "sequential_s": round(seq_s, 2),
        "sequential_tokens": seq_tokens,
        "speedup": round(seq_s / batched_s, 2),
    }


async def load_test(url: str, clients: int, seconds: float, max_tokens: int) -> dict:
    import httpx

    latencies: list[float] = []
    codes: dict[int, int] = {}
    stop_at = time.monotonic() + seconds

    async def client(i: int, http: httpx.AsyncClient) -> None:
        while time.monotonic() < stop_at:
            body = {"model": "twin", "prompt": f"Idea {i}: a tattoo of", "max_tokens": max_tokens}
            t = time.perf_counter()
            r = await http.post(url + "/v1/completions", json=body)
            codes[r.status_code] = codes.get(r.status_code, 0) + 1
            if r.status_code == 200:
                latencies.append(time.perf_counter() - t)
            elif r.status_code == 429:
                await asyncio.sleep(float(r.headers.get("retry-after", "1")))

    limits = httpx.Limits(max_connections=clients)
    async with httpx.AsyncClient(timeout=300, limits=limits) as http:
        started = time.perf_counter()
        await asyncio.gather(*(client(i, http) for i in range(clients)))
        wall = time.perf_counter() - started
    q = statistics.quantiles(latencies, n=20) if len(latencies) >= 2 else [0] * 19
    return {
        "clients": clients,
        "seconds": round(wall, 1),
        "codes": codes,
        "completed": len(latencies),
        "req_per_s": round(len(latencies) / wall, 2),
        "p50_s": round(statistics.median(latencies), 2) if latencies else None,
        "p95_s": round(q[18], 2),
    }


def run_load(engine, clients: int, seconds: float, max_tokens: int) -> dict:  # type: ignore[no-untyped-def]
    import uvicorn

    from selftune.config import ServeConfig
    from selftune.engines import ModelSpec
    from selftune.server import ServerState, create_app

    state = ServerState(
        catalog={"twin": ModelSpec("twin", "embedded")},
        serve=ServeConfig(max_batch=16, queue_size=64, batch_wait_ms=20, timeout_s=300),
        engines={"twin": engine},
    )
    port = 8765
    server = uvicorn.Server(
        uvicorn.Config(create_app(state), host="127.0.0.1", port=port, log_level="warning")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.05)
    memory = [rss_mb()]
    sampler_stop = threading.Event()

    def sample_memory() -> None:
        while not sampler_stop.wait(2):
            memory.append(rss_mb())

    threading.Thread(target=sample_memory, daemon=True).start()
    out = asyncio.run(load_test(f"http://127.0.0.1:{port}", clients, seconds, max_tokens))
    sampler_stop.set()
    server.should_exit = True
    thread.join(timeout=10)
    batcher = state.batchers["twin"]
    out["engine"] = engine.name
    out["rss_mb_start_mid_end"] = [
        round(memory[0]),
        round(memory[len(memory) // 2]),
        round(memory[-1]),
    ]
    out["batches"] = batcher.batches
    out["mean_batch"] = round(statistics.mean(batcher.batch_sizes), 1) if batcher.batch_sizes else 0
    state.close()
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tokens", type=int, default=128)
    parser.add_argument("--n", type=int, default=8)
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--seconds", type=float, default=45)
    parser.add_argument("--load-tokens", type=int, default=32)
    parser.add_argument(
        "--load-engine", choices=["auto", "transformers", "llamacpp"], default="auto"
    )
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    if args.quick:
        args.tokens, args.seconds, args.clients = 32, 10, 8

    import torch

    from selftune.engines import render_chat
    from selftune.engines.llamacpp_engine import LlamaCppEngine, available
    from selftune.engines.transformers_engine import TransformersEngine
    from selftune.models import embedded_gguf_path, load_model, load_tokenizer

    report: dict = {
        "load_average_before": os.getloadavg(),
        "cpus": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
    }
    tokenizer = load_tokenizer("embedded")
    prompt = render_chat(tokenizer, [{"role": "user", "content": PROMPT_TEXT}])
    gguf = embedded_gguf_path()
    engines = {"transformers": TransformersEngine(load_model("embedded"), tokenizer, "twin")}
    if available():
        engines["llamacpp"] = LlamaCppEngine(gguf, tokenizer, "twin")
        direct = llama_direct(str(gguf), prompt, args.tokens)
        report["single_stream"] = {"llama-cpp-python direct": direct}
        print("llama-cpp-python direct", direct, flush=True)
    else:
        report["single_stream"] = {}
    for name, engine in engines.items():
        single_stream(engine, prompt, 4)  # warm up
        report["single_stream"][name] = single_stream(engine, prompt, args.tokens)
        print(name, report["single_stream"][name], flush=True)
    auto = engines.get("llamacpp", engines["transformers"])
    report["auto_engine"] = auto.name
    report["n_vs_sequential"] = {}
    for name, engine in engines.items():
        report["n_vs_sequential"][name] = n_vs_sequential(engine, prompt, args.n, args.tokens)
        print(name, report["n_vs_sequential"][name], flush=True)
    load_engine = auto if args.load_engine == "auto" else engines[args.load_engine]
    report["load"] = run_load(load_engine, args.clients, args.seconds, args.load_tokens)
    print("load", report["load"], flush=True)
    report["load_average_after"] = os.getloadavg()
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
