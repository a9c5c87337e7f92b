"""Concurrent streaming clients against a real omnicoach server on 127.0.0.1.

For 1, 4 and 16 clients started together, each streaming one answer: time to first token
p50/p95, aggregate completion tok/s, and errors (which must be 0). Beside it, in the same run,
the engine called in-process with one stream, as the reference without HTTP.

    .venv/bin/python benchmarks/server_load.py [--clients 1 4 16] [--max-tokens 64] [--model M]
                                               [--answer-modes grounded generative]

The model is the default chat model (the fine-tuned smollm2-135m-yoga) unless --model names
another, e.g. the base smollm2-135m-instruct. Each answer mode runs on the same server, in
turn: "grounded" (the default: an answer about a knowledge-base exercise is written from its
entry) and "generative" (the chat model writes it from the entry's passages, as retrieval-
augmented answers did before grounded ones existed).
"""

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.server_process import ServerProcess  # noqa: E402 (needs the repository on sys.path)

from omnicoach.models.registry import TUNED_CHAT_MODEL  # noqa: E402

PROMPTS = [
    "How do I do downward dog safely?",
    "What muscles does a squat work?",
    "Give me a beginner plank progression.",
    "How should I breathe during sun salutations?",
]


async def one_client(
    http: httpx.AsyncClient, i: int, max_tokens: int, model: str, mode: str
) -> dict:
    body = {
        "model": model,
        "answer_mode": mode,
        "messages": [{"role": "user", "content": PROMPTS[i % len(PROMPTS)]}],
        "max_tokens": max_tokens,
        "temperature": 0,
        "ignore_eos": True,  # every answer max_tokens long, so runs compare
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    start = time.perf_counter()
    first, tokens = None, 0
    async with http.stream("POST", "/v1/chat/completions", json=body) as response:
        if response.status_code != 200:
            return {"error": f"HTTP {response.status_code}"}
        async for line in response.aiter_lines():
            if not line.startswith("data: ") or line == "data: [DONE]":
                continue
            chunk = json.loads(line[6:])
            if "error" in chunk:
                return {"error": chunk["error"]["message"]}
            if chunk["choices"] and chunk["choices"][0]["delta"].get("content"):
                first = first or time.perf_counter()
            if chunk.get("usage"):
                tokens = chunk["usage"]["completion_tokens"]
    return {"ttft": (first or time.perf_counter()) - start, "tokens": tokens}


async def warm_up(url: str, model: str) -> None:
    """A question none of the measured ones starts with, so no measured prompt is cached."""
    async with httpx.AsyncClient(base_url=url, timeout=600) as http:
        body = {"model": model, "messages": [{"role": "user", "content": "Hi"}], "max_tokens": 1}
        (await http.post("/v1/chat/completions", json=body)).raise_for_status()


async def load(url: str, clients: int, max_tokens: int, model: str, mode: str) -> dict:
    async with httpx.AsyncClient(base_url=url, timeout=600) as http:
        start = time.perf_counter()
        results = await asyncio.gather(
            *(one_client(http, i, max_tokens, model, mode) for i in range(clients))
        )
        wall = time.perf_counter() - start
    ok = [r for r in results if "error" not in r]
    ttfts = sorted(r["ttft"] for r in ok)
    return {
        "mode": mode,
        "clients": clients,
        "ttft_p50_s": round(statistics.median(ttfts), 3) if ttfts else None,
        "ttft_p95_s": round(ttfts[min(len(ttfts) - 1, int(0.95 * len(ttfts)))], 3)
        if ttfts
        else None,
        "aggregate_tok_s": round(sum(r["tokens"] for r in ok) / wall, 1),
        "errors": len(results) - len(ok),
    }


def in_process_reference(max_tokens: int, model: str) -> dict:
    from omnicoach.config import load_settings
    from omnicoach.models import ModelRegistry
    from omnicoach.models.llm import SamplingParams
    from omnicoach.threads import apply_threads

    settings = load_settings(data_dir=REPO / "var")
    apply_threads(settings.threads)
    llm = ModelRegistry(settings).chat(model)
    ttfts, tokens, elapsed = [], 0, 0.0
    for prompt in PROMPTS:
        start = time.perf_counter()
        generation = llm.stream(
            [{"role": "user", "content": prompt}],
            SamplingParams(max_tokens=max_tokens, temperature=0, ignore_eos=True),
        )
        first = None
        for _ in generation:
            first = first or time.perf_counter()
        elapsed += time.perf_counter() - start
        ttfts.append(first - start)
        tokens += generation.completion_tokens
    return {"ttft_p50_s": round(statistics.median(ttfts), 3), "tok_s": round(tokens / elapsed, 1)}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--clients", type=int, nargs="+", default=[1, 4, 16])
    parser.add_argument("--max-tokens", type=int, default=64)
    parser.add_argument("--model", default=TUNED_CHAT_MODEL)
    parser.add_argument(
        "--answer-modes", nargs="+", default=["grounded", "generative"],
        choices=["grounded", "generative"],
    )  # fmt: skip
    args = parser.parse_args()

    reference = in_process_reference(args.max_tokens, args.model)
    print(f"model: {args.model}")
    print(
        "in-process engine, one stream at a time: "
        f"TTFT p50 {reference['ttft_p50_s']} s, {reference['tok_s']} tok/s"
    )

    with (
        tempfile.TemporaryDirectory() as logs,
        ServerProcess(Path(logs) / "server.log") as server,
    ):
        # One request first, not counted: it loads a model that is not the default, and the
        # knowledge index.
        asyncio.run(warm_up(server.url, args.model))
        rows = [
            asyncio.run(load(server.url, n, args.max_tokens, args.model, mode))
            for mode in args.answer_modes
            for n in args.clients
        ]
    print("| answers | clients | TTFT p50 | TTFT p95 | aggregate tok/s | errors |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        cells = [r["mode"], r["clients"], f"{r['ttft_p50_s']} s", f"{r['ttft_p95_s']} s"]
        cells += [r["aggregate_tok_s"], r["errors"]]
        print("| " + " | ".join(str(c) for c in cells) + " |")


if __name__ == "__main__":
    main()
