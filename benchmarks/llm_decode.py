"""Chat LLM speed on this machine: prompt tok/s, decode tok/s, time to first token, peak RSS,
at 1 and 2 threads, for our fast engine (int4) and transformers' fp32 forward; time to first
token at turn 1 and turn 10 of a scripted conversation (~1,500 tokens of history by turn 10);
and both start times (first start dequantises the GGUF; later starts read the safetensors
cache). The last lines are `decode ratio vs llama.cpp: X.XX (threads=N)`.

When llama-cpp-python is importable, llama.cpp runs the same GGUF with the same threads and
prompt in the same run and the ratio is printed. It is an optional benchmark dependency
(no wheel; it compiles for ~20 minutes): `pip install llama-cpp-python`.

    .venv/bin/python benchmarks/llm_decode.py [--new-tokens 128] [--repeats 3] [--threads 1 2]
                                              [--rounds 3]

Each configuration runs in its own process so thread settings and peak RSS do not mix. Our
engine and llama.cpp run alternately, --rounds times each, and their medians are compared.
"""

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
BASE_MODEL = "smollm2-135m-instruct"
# About 38 tokens once the chat template is applied, as in the reference figures.
MESSAGES = [
    {"role": "system", "content": "You are a friendly yoga coach. Answer briefly."},
    {
        "role": "user",
        "content": "How do I do downward dog safely? I am a beginner with tight hamstrings.",
    },
]


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def load_llm(engine: str, threads: int, data_dir: str):
    """The bundled GGUF's own model, the weights llama.cpp runs (not the fine-tune the server
    chats with by default, which the fast engine serves as int8)."""
    from omnicoach.config import load_settings
    from omnicoach.models import ModelRegistry
    from omnicoach.threads import apply_threads

    settings = load_settings(data_dir=Path(data_dir), threads=threads, engine=engine)
    apply_threads(settings.threads)
    return ModelRegistry(settings).chat(BASE_MODEL)


ENGINE_NAMES = {"fast": "omnicoach fast int4", "transformers": "omnicoach transformers fp32"}


def run_torch(engine: str, threads: int, new_tokens: int, repeats: int, data_dir: str) -> dict:
    from omnicoach.models.llm import SamplingParams

    llm = load_llm(engine, threads, data_dir)
    params = SamplingParams(max_tokens=new_tokens, temperature=0.0, ignore_eos=True)
    llm.complete(MESSAGES, SamplingParams(max_tokens=8, temperature=0.0))  # warm-up

    runs = []
    for _ in range(repeats):
        if llm.engine is not None:
            llm.engine.clear_prefix_cache()  # a cold prompt each time, as llama.cpp's reset()
        start = time.perf_counter()
        generation = llm.stream(MESSAGES, params)
        first = None
        for _delta in generation:
            first = first or time.perf_counter()
        end = time.perf_counter()
        runs.append(
            (generation.prompt_tokens, first - start, generation.completion_tokens, end - first)
        )
    if llm.engine is not None:
        llm.engine.close()
    return summarise(ENGINE_NAMES[engine], threads, runs)


# A scripted conversation: ten questions, each answered by the model before the next.
QUESTIONS = [
    "I want to start yoga. Where should I begin?",
    "How often should I practise in the first month?",
    "What is a good pose for tight hamstrings?",
    "How do I do downward dog safely?",
    "My wrists hurt in plank. What can I change?",
    "Which poses help with lower back stiffness?",
    "How long should I hold each pose?",
    "Can I combine yoga with running?",
    "What should I eat before a morning session?",
    "Give me a short routine for tomorrow.",
]
ANSWER_TOKENS = 130  # ~1,400 tokens of history by turn 10
FIRST_TURN = [MESSAGES[0], {"role": "user", "content": QUESTIONS[0]}]


def run_conversation(engine: str, threads: int, data_dir: str) -> dict:
    """Time to first token of each turn, the history growing by one exchange per turn."""
    from omnicoach.models.llm import SamplingParams

    llm = load_llm(engine, threads, data_dir)
    # Warm-up on turn 1 itself, then forget its cache: turn 1 is then a cold prompt like any
    # other, not also the first of its shape (turn 1 measured 0.09–0.26 s without this
    # warm-up, 0.085–0.096 s with it: first-call setup of the products, it seems).
    llm.complete(FIRST_TURN, SamplingParams(max_tokens=8, temperature=0.0))
    if llm.engine is not None:
        llm.engine.clear_prefix_cache()
    answer_params = SamplingParams(max_tokens=ANSWER_TOKENS, temperature=0.0, ignore_eos=True)
    prompt_tokens = []

    def answer(messages):
        generation = llm.stream(messages, answer_params)
        yield from generation
        prompt_tokens.append(generation.prompt_tokens)

    ttfts = converse(answer)
    if llm.engine is not None:
        llm.engine.close()
    return conversation_row(ENGINE_NAMES[engine], threads, ttfts, prompt_tokens)


def converse(answer) -> list[float]:
    """Ask QUESTIONS in turn through ANSWER(messages) → text deltas; each turn's TTFT."""
    messages = [MESSAGES[0]]
    ttfts = []
    for question in QUESTIONS:
        messages.append({"role": "user", "content": question})
        start = time.perf_counter()
        parts = []
        for delta in answer(messages):
            if not parts:
                ttfts.append(time.perf_counter() - start)
            parts.append(delta)
        messages.append({"role": "assistant", "content": "".join(parts)})
    return ttfts


def conversation_row(engine: str, threads: int, ttfts: list[float], prompt_tokens: list) -> dict:
    return {
        "engine": engine,
        "threads": threads,
        "turn1_prompt_tokens": prompt_tokens[0] if prompt_tokens else "",
        "turn10_prompt_tokens": prompt_tokens[-1] if prompt_tokens else "",
        "turn1_ttft_s": round(ttfts[0], 3),
        "turn10_ttft_s": round(ttfts[-1], 3),
        "turn10_vs_turn1": round(ttfts[-1] / ttfts[0], 2),
    }


# llama.cpp's extra CPU buffer types repack weights for its AMX and AVX kernels. Where the CPU
# lists AMX but the kernel gives no tile state (this project's VM), its AMX kernel dies with
# SIGILL on the first multi-token prompt; main() probes that once and then runs llama.cpp
# without them (its AVX-512 kernels), saying so.
EXTRA_BUFFERS_ENV = "OMNICOACH_BENCH_LLAMA_EXTRA_BUFFERS"


def load_llama_cpp(threads: int):
    """llama.cpp on the same GGUF, and a logits processor that forbids the control tokens (as
    ignore_eos does on our side) — or None when llama-cpp-python is not installed."""
    try:
        import llama_cpp.llama_cpp as bindings
        from llama_cpp import Llama, LogitsProcessorList
    except ImportError:
        return None, None
    from omnicoach.models.bundled import smollm2_gguf

    if os.environ.get(EXTRA_BUFFERS_ENV) == "0":
        defaults = bindings.llama_model_default_params

        def without_extra_buffers():
            params = defaults()
            params.use_extra_bufts = False
            return params

        bindings.llama_model_default_params = without_extra_buffers
    llm = Llama(
        str(smollm2_gguf()), n_threads=threads, n_threads_batch=threads, n_ctx=2048, verbose=False
    )
    vocab = bindings.llama_model_get_vocab(llm.model)
    control = [t for t in range(llm.n_vocab()) if bindings.llama_vocab_is_control(vocab, t)]

    def no_control(_ids, scores):
        scores[control] = -float("inf")
        return scores

    return llm, LogitsProcessorList([no_control])


def llama_cpp_extra_buffers_work() -> bool:
    """Whether llama.cpp survives a prompt with its extra buffer types (in a child process)."""
    probe = [sys.executable, __file__, "--worker", "llama-probe"]
    return subprocess.run(probe, capture_output=True).returncode == 0


def probe_llama_cpp() -> None:
    llm, _ = load_llama_cpp(1)
    if llm is not None:
        llm("A prompt of several tokens, so that llama.cpp multiplies matrices.", max_tokens=2)


def run_llama_cpp_conversation(threads: int) -> dict | None:
    """The same conversation through llama.cpp, which keeps the KV cache of the previous
    prompt and evaluates only what follows the longest shared beginning (its prefix reuse)."""
    llm, no_eos = load_llama_cpp(threads)
    if llm is None:
        return None
    llm.create_chat_completion(FIRST_TURN, max_tokens=8, temperature=0.0)  # as on our side
    llm.reset()

    def answer(messages):
        return llama_cpp_deltas(llm, no_eos, messages, ANSWER_TOKENS)

    return conversation_row("llama.cpp Q4_1 (llama-cpp-python)", threads, converse(answer), [])


def llama_cpp_deltas(llm, no_eos, messages: list[dict], max_tokens: int):
    """llama.cpp's streamed answer, greedy and running to MAX_TOKENS: its text deltas."""
    for chunk in llm.create_chat_completion(
        messages,
        max_tokens=max_tokens,
        temperature=0.0,
        stream=True,
        logits_processor=no_eos,
    ):
        if content := chunk["choices"][0]["delta"].get("content"):
            yield content


def run_llama_cpp(threads: int, new_tokens: int, repeats: int) -> dict | None:
    llm, no_eos = load_llama_cpp(threads)
    if llm is None:
        return None
    runs = []
    for i in range(repeats + 1):
        llm.reset()  # no prefix reuse between runs: a cold prompt each time, as on our side
        start = time.perf_counter()
        first, count = None, 0
        for _ in llama_cpp_deltas(llm, no_eos, MESSAGES, new_tokens):
            first = first or time.perf_counter()
            count += 1
        end = time.perf_counter()
        if i:  # the first run is the warm-up
            runs.append((None, first - start, count, end - first))
    return summarise("llama.cpp Q4_1 (llama-cpp-python)", threads, runs)


def summarise(engine: str, threads: int, runs: list[tuple]) -> dict:
    prompt_tokens = runs[0][0]
    ttft = statistics.median(r[1] for r in runs)
    decode = statistics.median((r[2] - 1) / r[3] for r in runs if r[3] > 0)
    return {
        "engine": engine,
        "threads": threads,
        "prompt_tokens": prompt_tokens,
        "ttft_s": round(ttft, 3),
        "prompt_tok_s": round(prompt_tokens / ttft, 1) if prompt_tokens else None,
        "decode_tok_s": round(decode, 1),
        "new_tokens": runs[0][2],
        "peak_rss_mb": round(peak_rss_mb()),
    }


def median_row(runs: list[dict], keys=("ttft_s", "prompt_tok_s", "decode_tok_s")) -> dict:
    """One row for several runs of a configuration: the median of each of KEYS, highest RSS."""
    row = dict(runs[0])
    for key in keys:
        if row.get(key) is not None:
            row[key] = round(statistics.median(run[key] for run in runs), 3)
    if "peak_rss_mb" in row:
        row["peak_rss_mb"] = max(run["peak_rss_mb"] for run in runs)
    if len(runs) > 1:
        row["engine"] += f" (median of {len(runs)})"
    return row


def median_conversation(runs: list[dict]) -> dict:
    row = median_row(runs, ("turn1_ttft_s", "turn10_ttft_s"))
    row["turn10_vs_turn1"] = round(row["turn10_ttft_s"] / row["turn1_ttft_s"], 2)
    return row


def measure_start_time(data_dir: str) -> dict:
    """Seconds to load the chat model in a new process (libraries already imported)."""
    from omnicoach.config import load_settings
    from omnicoach.models import ModelRegistry

    start = time.perf_counter()
    ModelRegistry(load_settings(data_dir=Path(data_dir))).chat()
    return {"load_s": round(time.perf_counter() - start, 2)}


def in_subprocess(*args: str) -> dict | None:
    out = subprocess.run(
        [sys.executable, __file__, "--worker", *args],
        capture_output=True,
        text=True,
        cwd=REPO,
        check=True,
    ).stdout
    result = json.loads(out.strip().splitlines()[-1])
    return result or None


def alternate(ours: tuple, theirs: tuple, rounds: int) -> tuple[list, list]:
    """Our worker and llama.cpp's, one after the other ROUNDS times: their results (llama.cpp's
    empty when it is not installed)."""
    mine, llama = [], []
    for _ in range(rounds):
        mine.append(in_subprocess(*ours))
        if row := in_subprocess(*theirs):
            llama.append(row)
    return mine, llama


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--new-tokens", type=int, default=128)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument(
        "--rounds", type=int, default=3, help="alternating runs of our engine and llama.cpp"
    )
    parser.add_argument("--worker", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.worker:  # inside one measuring process
        kind, *rest = args.worker
        if kind == "start":
            result = measure_start_time(rest[0])
        elif kind == "torch":
            result = run_torch(rest[0], int(rest[1]), args.new_tokens, args.repeats, rest[2])
        elif kind == "conversation":
            result = run_conversation(rest[0], int(rest[1]), rest[2])
        elif kind == "llama-probe":
            probe_llama_cpp()
            result = {}
        elif kind == "llama-conversation":
            result = run_llama_cpp_conversation(int(rest[0]))
        else:
            result = run_llama_cpp(int(rest[0]), args.new_tokens, args.repeats)
        print(json.dumps(result))
        return

    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    if not llama_cpp_extra_buffers_work():
        os.environ[EXTRA_BUFFERS_ENV] = "0"
        print("llama.cpp: its AMX kernels crash on this machine; measured without its extra")
        print("buffer types (use_extra_bufts=False), i.e. with its AVX-512 kernels")
    with tempfile.TemporaryDirectory() as fresh:
        first = in_subprocess("start", fresh)["load_s"]  # dequantises the GGUF, writes the cache
        cached = in_subprocess("start", fresh)["load_s"]  # a new process reading that cache
    print(
        f"chat model load: first start {first} s (GGUF dequantised + cached), next start {cached} s"
    )

    # Our engine and llama.cpp alternate, ROUNDS times each, and the medians are compared: this
    # machine's speed drifts by ±20 % over minutes, which one run of each would read as theirs.
    rows, ratios = [], []
    for threads in args.threads:
        run = ["--new-tokens", str(args.new_tokens), "--repeats", str(args.repeats)]
        var = str(REPO / "var")
        reference_row = in_subprocess("torch", "transformers", str(threads), var, *run)
        ours, theirs = alternate(
            ("torch", "fast", str(threads), var, *run), ("llama", str(threads), *run), args.rounds
        )
        torch_row = median_row(ours)
        rows += [reference_row, torch_row]
        if theirs:
            llama_row = median_row(theirs)
            # Same template, same prompt: the token count is the one our tokenizer gave.
            llama_row["prompt_tokens"] = torch_row["prompt_tokens"]
            llama_row["prompt_tok_s"] = round(torch_row["prompt_tokens"] / llama_row["ttft_s"], 1)
            rows.append(llama_row)
            for row in (reference_row, torch_row):
                row["decode_vs_llama_cpp"] = round(
                    row["decode_tok_s"] / llama_row["decode_tok_s"], 2
                )
            per_round = [
                o["decode_tok_s"] / t["decode_tok_s"] for o, t in zip(ours, theirs, strict=True)
            ]
            ratios.append((torch_row["decode_vs_llama_cpp"], threads, per_round))

    columns = [
        "engine",
        "threads",
        "prompt_tokens",
        "ttft_s",
        "prompt_tok_s",
        "decode_tok_s",
        "new_tokens",
        "peak_rss_mb",
        "decode_vs_llama_cpp",
    ]
    print("| " + " | ".join(columns) + " |")
    print("|" + "---|" * len(columns))
    for row in rows:
        print("| " + " | ".join(str(row.get(c, "")) for c in columns) + " |")

    conversation = []
    for threads in args.threads:
        where = [str(threads), str(REPO / "var")]
        conversation.append(in_subprocess("conversation", "transformers", *where))
        ours, theirs = alternate(
            ("conversation", "fast", *where), ("llama-conversation", str(threads)), args.rounds
        )
        conversation += [median_conversation(ours)] + (
            [median_conversation(theirs)] if theirs else []
        )
    columns = list(conversation[0])
    print(f"\nA ten-turn conversation (each answer {ANSWER_TOKENS} tokens):")
    print("| " + " | ".join(columns) + " |")
    print("|" + "---|" * len(columns))
    for row in conversation:
        print("| " + " | ".join(str(row.get(c, "")) for c in columns) + " |")

    if not ratios:
        print("(llama-cpp-python is not installed: no llama.cpp reference in this run)")
    for _, threads, per_round in ratios:
        rounds = " ".join(f"{r:.2f}" for r in per_round)
        print(f"(threads={threads}: the ratio in each round {rounds}; the line below: of medians)")
    for ratio, threads, _ in ratios:
        print(f"decode ratio vs llama.cpp: {ratio:.2f} (threads={threads})")


if __name__ == "__main__":
    main()
