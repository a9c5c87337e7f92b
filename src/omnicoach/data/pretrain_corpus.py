"""Text for pretraining a small LM from random weights: a clean corpus assembled from the
project's own texts, a held-out part of it that training never sees, and synthetic text that
worker processes generate with a chat model while training runs.

The clean corpus is the project's own writing, Apache-2.0 like the repository (LICENSE):
- the knowledge base, English fields of data/kb/exercises/*.json (summary, muscles, steps,
  common mistakes, cautions, beginner modification, benefits), one document per exercise;
- the prose of README.md and data/kb/README.md, split at headings, code blocks dropped;
- the English prompts of data/router/train.jsonl (short user questions and requests).
About a tenth of the exercises — chosen by a hash of their id, the same rule that makes
data/sft's test_unseen split — are held out: their text is the evaluation text, and the
synthetic prompts never name them either.

Synthetic text: each worker loads a chat model (default the bundled SmolLM2-135M-Instruct),
asks it for short paragraphs about exercises and fitness topics, sampled at temperature 0.8, and
puts them on a bounded queue. `MixedBlocks` drains that queue into a growing pool while training
runs; nothing waits for generation to finish, and before the pool holds a whole block the
synthetic share of a batch is clean text.

Torch is imported inside the functions: a worker is a spawned process that must set its thread
count before torch starts its thread pool.
"""

import hashlib
import os
import queue as queue_module
import random
import re
from dataclasses import dataclass
from pathlib import Path

from omnicoach.config import REPO
from omnicoach.errors import InvalidRequestError
from omnicoach.knowledge.base import KB_DIR, load_entries

# A synthetic row waits until the pool holds this many blocks of text: half of every batch
# drawn from one or two paragraphs would be learnt by heart.
MIN_POOL_BLOCKS = 4
README_FILES = (REPO / "README.md", KB_DIR / "README.md")
ROUTER_PROMPTS = REPO / "data" / "router" / "train.jsonl"

# Topics beyond the knowledge base's exercises, so the synthetic text is not all exercise notes.
FITNESS_TOPICS = (
    "warming up before exercise", "cooling down after a workout", "breathing in yoga",
    "staying hydrated during training", "sleep and muscle recovery", "rest days",
    "building a weekly workout plan", "stretching for runners", "good posture at a desk",
    "progressive overload in strength training", "balance training for older adults",
    "core strength", "mobility of the hips", "shoulder health", "lower back pain and exercise",
    "meditation after yoga", "walking for fitness", "eating protein after training",
    "exercising at home without equipment", "keeping motivated to train",
)  # fmt: skip
PROMPTS = (
    "Write a short paragraph about {topic}.",
    "Explain {topic} to a beginner in a few sentences.",
    "Give some practical advice about {topic}.",
)


def is_held_out(exercise_id: str) -> bool:
    """About a tenth of the exercises (the rule of data/sft's test_unseen split)."""
    return int(hashlib.sha1(exercise_id.encode()).hexdigest(), 16) % 10 == 0


def exercise_text(entry: dict) -> str:
    """One exercise as a plain English document."""
    name = entry["name"]["en"] + (f" ({entry['sanskrit']})" if entry.get("sanskrit") else "")
    steps = " ".join(f"{i}. {step}" for i, step in enumerate(entry["steps"]["en"], 1))
    muscles = ", ".join(entry["primary_muscles"])
    also = ", ".join(entry["secondary_muscles"])
    return "\n".join(
        [
            f"{name}: {entry['summary']['en']}",
            f"Works: {muscles}" + (f"; also {also}." if also else "."),
            f"How to do it: {steps}",
            "Common mistakes: " + " ".join(entry["common_mistakes"]["en"]),
            "Cautions: " + " ".join(entry["cautions"]["en"]),
            "Beginner modification: " + entry["beginner_modification"]["en"],
            "Benefits: " + " ".join(entry["benefits"]["en"]),
        ]
    )


def prose_sections(markdown: str) -> list[str]:
    """The prose of a Markdown file, one document per section; code blocks and tables are
    dropped (they are not the language the model should learn first)."""
    without_code = re.sub(r"```.*?```", "", markdown, flags=re.DOTALL)
    sections = re.split(r"\n(?=#{1,6} )", without_code)
    documents = []
    for section in sections:
        lines = [line for line in section.splitlines() if not line.lstrip().startswith("|")]
        text = "\n".join(lines).strip()
        if len(text) > 200:
            documents.append(text)
    return documents


def router_prompts(path: Path = ROUTER_PROMPTS, per_document: int = 20) -> list[str]:
    """The English router prompts, PER_DOCUMENT to a document."""
    from omnicoach.training.jsonl import read_jsonl

    if not path.is_file():
        return []
    prompts = [row["prompt"] for _, row in read_jsonl(path) if row.get("lang") == "en"]
    return ["\n".join(prompts[i : i + per_document]) for i in range(0, len(prompts), per_document)]


@dataclass
class Corpus:
    train: list[str]  # documents
    held_out: list[str]
    held_out_ids: list[str]  # the exercises whose text is held out
    sources: dict[str, int]  # documents per source, for the report


def build_corpus(kb_dir: Path = KB_DIR) -> Corpus:
    entries = load_entries(kb_dir)
    held = [e for e in entries if is_held_out(e["id"])]
    if not held or len(held) == len(entries):
        raise InvalidRequestError(
            f"the knowledge base in {kb_dir} has {len(entries)} exercises; the held-out rule "
            "needs some in each part (about a tenth held out)"
        )
    exercises = [exercise_text(e) for e in entries if not is_held_out(e["id"])]
    readmes = [doc for path in README_FILES if path.is_file() for doc in prose_sections(
        path.read_text(encoding="utf-8")
    )]  # fmt: skip
    prompts = router_prompts()
    return Corpus(
        train=exercises + readmes + prompts,
        held_out=[exercise_text(e) for e in held],
        held_out_ids=[e["id"] for e in held],
        sources={
            "knowledge base exercises (English)": len(exercises),
            "README prose sections": len(readmes),
            "router prompts (English, 20 per document)": len(prompts),
        },
    )


def synthetic_topics(kb_dir: Path = KB_DIR) -> list[str]:
    """What the synthetic paragraphs are about: the training exercises and general topics."""
    names = [e["name"]["en"] for e in load_entries(kb_dir) if not is_held_out(e["id"])]
    return [f"the exercise {name}" for name in names] + list(FITNESS_TOPICS)


def token_stream(tokenizer, documents: list[str]):
    """All documents as one 1-D tensor of token ids, each followed by the end-of-text token
    (so the model learns where a document ends, as GPT-2 and nanoGPT do)."""
    import torch

    ids: list[int] = []
    for text in documents:
        ids.extend(tokenizer(text, add_special_tokens=False)["input_ids"])
        ids.append(tokenizer.eos_token_id)
    return torch.tensor(ids, dtype=torch.long)


# --- synthetic text ---------------------------------------------------------------------------


def generate_paragraphs(
    model_source: str,
    model_cache: str,
    topics: list[str],
    seed: int,
    out_queue,
    stop,
    max_new_tokens: int = 96,
    temperature: float = 0.8,
) -> None:
    """A worker process: generate paragraphs until STOP is set, putting each on OUT_QUEUE.

    One torch thread: the trainer has the other cores; two threads per worker were measured
    slower than one under load (DESIGN.md §1)."""
    os.environ["OMP_NUM_THREADS"] = "1"
    import torch

    from omnicoach.models.llm_loader import load_causal_lm

    torch.set_num_threads(1)
    torch.manual_seed(seed)
    pick = random.Random(seed)
    tokenizer, model = load_causal_lm(Path(model_source), Path(model_cache))
    out_queue.cancel_join_thread()  # exit at STOP even if the trainer left texts unread
    while not stop.is_set():
        prompt = pick.choice(PROMPTS).format(topic=pick.choice(topics))
        if tokenizer.chat_template:
            messages = [{"role": "user", "content": prompt}]
            text = tokenizer.apply_chat_template(
                messages, tokenize=False, add_generation_prompt=True
            )
        else:
            text = prompt + "\n"
        inputs = tokenizer(text, return_tensors="pt", add_special_tokens=False)
        with torch.no_grad():
            output = model.generate(
                **inputs,
                do_sample=True,
                temperature=temperature,
                top_p=0.95,
                max_new_tokens=max_new_tokens,
                pad_token_id=tokenizer.eos_token_id,
            )
        paragraph = tokenizer.decode(
            output[0, inputs["input_ids"].shape[1] :], skip_special_tokens=True
        )
        paragraph = paragraph.strip()
        while paragraph and not stop.is_set():  # a full queue: wait, but not past STOP
            try:
                out_queue.put(paragraph, timeout=0.5)
                break
            except queue_module.Full:
                continue


class SyntheticText:
    """WORKERS spawned generator processes feeding one bounded queue. Use as a context
    manager; leaving it stops and reaps the workers."""

    def __init__(self, model_source: Path, model_cache: Path, topics: list[str], workers: int,
                 seed: int, queue_size: int = 64, max_new_tokens: int = 96,
                 temperature: float = 0.8):  # fmt: skip
        import multiprocessing

        # spawn, not fork: a forked child would inherit the trainer's torch thread pool and,
        # under DDP, its process group.
        context = multiprocessing.get_context("spawn")
        self.queue = context.Queue(maxsize=queue_size)
        self.stop = context.Event()
        self.processes = [
            context.Process(
                target=generate_paragraphs,
                args=(
                    str(model_source),
                    str(model_cache),
                    topics,
                    seed + i,
                    self.queue,
                    self.stop,
                    max_new_tokens,
                    temperature,
                ),  # fmt: skip
                daemon=True,
            )
            for i in range(workers)
        ]

    def __enter__(self):
        for process in self.processes:
            process.start()
        return self

    def __exit__(self, *_):
        self.stop.set()
        for process in self.processes:
            process.join(timeout=15)
            if process.is_alive():  # stuck in a long generate(): no state worth saving
                process.terminate()
                process.join(timeout=5)
        self.queue.close()
        self.queue.cancel_join_thread()

    def failed(self) -> list[int]:
        """Exit codes of workers that died (a worker only exits when told to)."""
        return [p.exitcode for p in self.processes if p.exitcode not in (None, 0)]


class MixedBlocks:
    """Training batches of BLOCK_SIZE tokens: each row is synthetic with probability
    SYNTHETIC_SHARE, otherwise a window of the clean corpus.

    Generated paragraphs are drained from the queue into a pool that keeps growing; a synthetic
    row is a random window of that pool, so the share holds even while generation is slower
    than training (paragraphs are then seen more than once: with one worker on 2 cores, a few
    times each). Until the pool holds MIN_POOL_BLOCKS blocks, a synthetic row falls back to
    clean text: training never waits for generation."""

    def __init__(self, clean, block_size: int, synthetic_share: float, tokenizer=None,
                 text_queue=None, on_text=None):  # fmt: skip
        import torch

        if len(clean) <= block_size:
            raise InvalidRequestError(
                f"the clean corpus has {len(clean)} tokens, fewer than one block of {block_size}"
            )
        self.clean = clean
        self.block_size = block_size
        self.synthetic_share = synthetic_share
        self.tokenizer = tokenizer
        self.text_queue = text_queue
        self.on_text = on_text  # called with each new paragraph (the trainer logs them)
        self.pool = torch.zeros(0, dtype=torch.long)
        self.texts = 0
        self.rows = {"clean": 0, "synthetic": 0, "synthetic_fallback": 0}

    def drain(self) -> None:
        import torch

        if self.text_queue is None:
            return
        new = []
        while True:
            try:
                text = self.text_queue.get_nowait()
            except (queue_module.Empty, OSError, ValueError):
                break
            ids = self.tokenizer(text, add_special_tokens=False)["input_ids"]
            new.append(torch.tensor([*ids, self.tokenizer.eos_token_id], dtype=torch.long))
            self.texts += 1
            if self.on_text:
                self.on_text(text)
        if new:
            self.pool = torch.cat([self.pool, *new])

    def batch(self, batch_size: int, rng: random.Random):
        """A (BATCH_SIZE, BLOCK_SIZE) tensor of token ids; RNG decides every choice, so a
        batch depends only on the RNG (and, for synthetic rows, on what has arrived)."""
        import torch

        self.drain()
        rows = []
        for _ in range(batch_size):
            source = self.clean
            if rng.random() < self.synthetic_share:
                if len(self.pool) >= MIN_POOL_BLOCKS * self.block_size:
                    source = self.pool
                    self.rows["synthetic"] += 1
                else:
                    self.rows["synthetic_fallback"] += 1
            if source is self.clean:
                self.rows["clean"] += 1
            start = rng.randrange(len(source) - self.block_size)
            rows.append(source[start : start + self.block_size])
        return torch.stack(rows)

    def synthetic_fraction(self) -> float:
        """The share of rows so far that were really synthetic text."""
        total = self.rows["clean"] + self.rows["synthetic"]
        return self.rows["synthetic"] / total if total else 0.0
