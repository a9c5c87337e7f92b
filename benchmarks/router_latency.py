"""Prompt-router latency on one thread: each test-split prompt classified alone (as the chat
does), p50 / p95 / max, beside sentence-transformers encoding the same prompts one by one
with the same MiniLM (the reference: the router adds a LoRA-merged encoder and a linear head).

    .venv/bin/python benchmarks/router_latency.py [--repeats 3]

Target (issue 06): p95 ≤ 20 ms per prompt on one thread.
"""

import argparse
import statistics
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def timed(function, prompts: list[str], repeats: int) -> list[float]:
    for prompt in prompts[:10]:  # warm-up
        function(prompt)
    times = []
    for _ in range(repeats):
        for prompt in prompts:
            start = time.perf_counter()
            function(prompt)
            times.append((time.perf_counter() - start) * 1000)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    torch.set_num_threads(1)

    from omnicoach.config import load_settings
    from omnicoach.models.bundled import minilm_dir
    from omnicoach.models.embedder import TextEmbedder
    from omnicoach.models.prompt_router import PromptRouter
    from omnicoach.training.router import load_examples

    prompts = [e.prompt for e in load_examples(REPO / "data" / "router" / "test.jsonl")]
    router = PromptRouter(load_settings().router_dir, minilm_dir())
    embedder = TextEmbedder(minilm_dir(), "all-minilm-l6-v2")
    rows = [
        ("omnicoach router (classify)", timed(router.classify, prompts, args.repeats)),
        (
            "sentence-transformers encode (reference)",
            timed(lambda p: embedder.embed([p]), prompts, args.repeats),
        ),
    ]
    print(f"{len(prompts)} test prompts × {args.repeats}, one at a time, 1 thread")
    print("| model | p50 ms | p95 ms | max ms |")
    print("|---|---|---|---|")
    for name, times in rows:
        print(
            f"| {name} | {statistics.median(times):.1f} | {percentile(times, 0.95):.1f} "
            f"| {max(times):.1f} |"
        )
    print(f"router p95: {percentile(rows[0][1], 0.95):.1f} ms (target ≤ 20 ms)")


if __name__ == "__main__":
    main()
