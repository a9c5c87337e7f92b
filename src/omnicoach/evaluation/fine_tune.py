"""How much the fine-tune and retrieval each help: base, base+RAG, LoRA, LoRA+RAG.

    omnicoach eval sft [--per-cell 24] [--perplexity-per-cell 60] [--out reports/sft]

On the held-out splits of data/sft (data/sft_dataset.py): test_known (exercises seen in
training, asked with phrasings never trained on) and test_unseen (exercises held out whole),
each in English and Bengali. Every conversation gives one item: its history up to the last
question, and the last answer as the reference. Per configuration, split and language:

- perplexity of the reference answer's tokens (teacher-forced, fp32 weights): how likely
  the model finds the right answer;
- semantic similarity (MiniLM cosine; evaluation/answer_scores.py) and BLEU of the answer it
  generates, greedy, through the engine the server uses (fast engine, quantised weights), with
  room for half again the reference's length;
- with RAG, the share of answers that cite a source ("[1]").

Retrieval uses the server's knowledge index and prompt (knowledge/grounding.py). The
knowledge base holds every exercise, the held-out ones too: retrieval is how the product
answers about exercises the fine-tune never saw. Seeded samples; results.json and a README.md
with the tables and side-by-side examples go to the output directory.
"""

import json
import math
import random
import re
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from omnicoach.evaluation.answer_scores import bleu, semantic_similarity
from omnicoach.knowledge.grounding import grounded_messages, retrieve, within_budget
from omnicoach.models.registry import BASE_CHAT_MODEL, TUNED_CHAT_MODEL
from omnicoach.models.sampling import SamplingParams
from omnicoach.training.jsonl import read_jsonl

SPLITS = ("test_known", "test_unseen")
LANGS = ("en", "bn")
# (label, chat model, retrieval on)
CONFIGS = (
    ("base", BASE_CHAT_MODEL, False),
    ("base+RAG", BASE_CHAT_MODEL, True),
    ("LoRA", TUNED_CHAT_MODEL, False),
    ("LoRA+RAG", TUNED_CHAT_MODEL, True),
)
MAX_NEW_TOKENS = 768
CITATION = re.compile(r"\[\d+\]")


@dataclass
class Item:
    split: str
    lang: str
    exercise: str
    messages: list[dict]  # the conversation up to (and including) its last question
    reference: str  # the last answer


def load_items(data_dir: Path, split: str) -> list[Item]:
    items = []
    for _, row in read_jsonl(Path(data_dir) / f"{split}.jsonl"):
        messages = row["messages"]
        last = max(i for i, m in enumerate(messages) if m["role"] == "assistant")
        items.append(
            Item(split, row["lang"], row["exercise"], messages[:last], messages[last]["content"])
        )
    return items


def sample(items: list[Item], per_cell: int, seed: int) -> list[Item]:
    """Up to PER_CELL items of each (split, language), the same ones for every configuration."""
    cells = defaultdict(list)
    for item in items:
        cells[item.split, item.lang].append(item)
    rng = random.Random(seed)
    return [
        item
        for key in sorted(cells)
        for item in rng.sample(cells[key], min(per_cell, len(cells[key])))
    ]


def with_system_prompt(messages: list[dict], system_prompt: str) -> list[dict]:
    """What the server sends the model (ChatLLM adds the same when there is no system turn)."""
    if not system_prompt or (messages and messages[0]["role"] == "system"):
        return messages
    return [{"role": "system", "content": system_prompt}, *messages]


@torch.no_grad()
def answer_nll(llm, messages: list[dict], answer: str) -> tuple[float, int]:
    """(summed negative log-likelihood, token count) of ANSWER as the reply to MESSAGES."""
    tokenizer = llm.tokenizer
    prompt = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    full = tokenizer.apply_chat_template(
        [*messages, {"role": "assistant", "content": answer}], tokenize=False
    )
    encoded = tokenizer(full, add_special_tokens=False, return_offsets_mapping=True)
    ids = torch.tensor([encoded["input_ids"]])
    scored = torch.tensor([start >= len(prompt) for start, _ in encoded["offset_mapping"]])
    logits = llm.model(input_ids=ids).logits[0, :-1].float()
    targets, keep = ids[0, 1:], scored[1:]
    losses = torch.nn.functional.cross_entropy(logits[keep], targets[keep], reduction="sum")
    return losses.item(), int(keep.sum())


def generate(llm, messages: list[dict], reference_tokens: int, most: int = MAX_NEW_TOKENS) -> str:
    """The greedy answer, with room for half again the reference's length (within the
    context window): enough to say it all, not so much that rambling costs minutes."""
    free = llm.context_length - llm.count_tokens(llm.render(messages))
    room = max(1, min(most, reference_tokens * 3 // 2 + 20, free))
    return llm.complete(messages, SamplingParams(max_tokens=room, temperature=0)).text.strip()


class FineTuneEvaluation:
    def __init__(
        self, registry, settings, data_dir: Path, log=print, progress=None, max_new_tokens=None
    ):
        self.registry, self.settings, self.log = registry, settings, log
        self.max_new_tokens = max_new_tokens or MAX_NEW_TOKENS
        self.progress = progress or (lambda iterable, **_: iterable)
        self.items = [item for split in SPLITS for item in load_items(data_dir, split)]
        self._index = None

    def _knowledge_index(self):
        """The server's passage index (knowledge/library.py), built on first use."""
        if self._index is None:
            from omnicoach.knowledge.library import Knowledge

            embedder = self.registry.embedder()
            self._index = Knowledge(embedder, self.settings.model_cache_dir).index
        return self._index

    def prompt(self, item: Item, rag: bool, count_tokens) -> list[dict]:
        messages = item.messages
        if rag:
            settings = self.settings
            passages = retrieve(self._knowledge_index(), messages, settings.rag_passages)
            passages = within_budget(passages, count_tokens, settings.rag_max_tokens)
            messages = grounded_messages(messages, passages)
        return with_system_prompt(messages, self.settings.system_prompt)

    def run(self, per_cell: int, perplexity_per_cell: int, seed: int = 0) -> dict:
        generated_items = sample(self.items, per_cell, seed)
        scored_items = sample(self.items, perplexity_per_cell, seed)
        embedder = self.registry.embedder()
        results, answers = {}, {}
        for label, model, rag in CONFIGS:
            llm = self.registry.chat(model)
            prompts = {
                id(i): self.prompt(i, rag, llm.count_tokens) for i in scored_items + generated_items
            }
            nll = defaultdict(lambda: [0.0, 0])
            for item in self.progress(scored_items, desc=f"{label}: perplexity"):
                total, count = answer_nll(llm, prompts[id(item)], item.reference)
                nll[item.split, item.lang][0] += total
                nll[item.split, item.lang][1] += count

            def answer(item, llm=llm, prompts=prompts):
                tokens = llm.count_tokens(item.reference)
                return generate(llm, prompts[id(item)], tokens, self.max_new_tokens)

            workers = self.settings.max_concurrent_generations
            with ThreadPoolExecutor(workers) as pool:  # the engine batches concurrent requests
                texts = list(
                    self.progress(
                        pool.map(answer, generated_items),
                        total=len(generated_items),
                        desc=f"{label}: answers",
                    )
                )
            answers[label] = texts
            results[label] = self._scores(generated_items, texts, nll, embedder)
            self.log(f"{label}: {json.dumps(results[label])}")
        return {
            "per_cell": per_cell,
            "perplexity_per_cell": perplexity_per_cell,
            "seed": seed,
            "system_prompt": self.settings.system_prompt,
            "rag_passages": self.settings.rag_passages,
            "rag_max_tokens": self.settings.rag_max_tokens,
            "results": results,
            "items": [
                {**asdict(item), "answers": {label: answers[label][i] for label in answers}}
                for i, item in enumerate(generated_items)
            ],
        }

    def _scores(self, items: list[Item], texts: list[str], nll, embedder) -> dict:
        similarity = semantic_similarity(embedder, texts, [i.reference for i in items])
        cells = {}
        for split in SPLITS:
            for lang in LANGS:
                chosen = [k for k, i in enumerate(items) if (i.split, i.lang) == (split, lang)]
                total, count = nll[split, lang]
                cells[f"{split}/{lang}"] = {
                    "perplexity": math.exp(total / count) if count else None,
                    "answer_tokens_scored": count,
                    "answers": len(chosen),
                    "similarity": _mean([similarity[k] for k in chosen]),
                    "bleu": bleu([texts[k] for k in chosen], [items[k].reference for k in chosen])
                    if chosen
                    else None,
                    "cites_source": _mean([bool(CITATION.search(texts[k])) for k in chosen]),
                }
        return cells


def _mean(values) -> float | None:
    return sum(values) / len(values) if values else None


def markdown_report(report: dict, examples: int = 5) -> str:
    """Tables (one per metric: configurations × split/language) and side-by-side examples."""
    results = report["results"]
    cells = [f"{split}/{lang}" for split in SPLITS for lang in LANGS]
    lines = [
        "# Fine-tune and retrieval evaluation",
        "",
        f"Written by `omnicoach eval sft --per-cell {report['per_cell']} --perplexity-per-cell "
        f"{report['perplexity_per_cell']}` (seed {report['seed']}). Answers per cell: "
        f"{report['per_cell']}; perplexity over {report['perplexity_per_cell']} reference "
        "answers per cell. test_known: trained exercises, unseen phrasings; test_unseen: "
        "exercises held out of training.",
        "",
    ]
    metrics = (
        ("perplexity", "Perplexity of the reference answers (lower is better)", "{:.2f}"),
        ("similarity", "Semantic similarity to the reference (MiniLM cosine)", "{:.3f}"),
        ("bleu", "BLEU (sacrebleu, 13a)", "{:.1f}"),
        ("cites_source", "Answers citing a source", "{:.0%}"),
    )
    for key, title, form in metrics:
        lines += [f"## {title}", "", "| configuration | " + " | ".join(cells) + " |"]
        lines.append("|---|" + "---:|" * len(cells))
        for label in results:
            values = [results[label][c][key] for c in cells]
            shown = [form.format(v) if v is not None else "—" for v in values]
            lines.append(f"| {label} | " + " | ".join(shown) + " |")
        lines.append("")
    lines += ["## Side by side", ""]
    for item in side_by_side(report["items"], examples):
        question = item["messages"][-1]["content"]
        lines += [f"**{question}** ({item['split']}, {item['lang']}, `{item['exercise']}`)", ""]
        lines += [f"- reference: {_one_line(item['reference'])}"]
        lines += [f"- {label}: {_one_line(text)}" for label, text in item["answers"].items()]
        lines.append("")
    return "\n".join(lines)


def write_report(report: dict, out: Path) -> None:
    """OUT/results.json (every answer) and OUT/README.md (markdown_report)."""
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_text(json.dumps(report, indent=1, ensure_ascii=False))
    (out / "README.md").write_text(markdown_report(report))


def side_by_side(items: list[dict], count: int) -> list[dict]:
    """COUNT examples spread over the splits and languages (the first of each cell in turn)."""
    cells = defaultdict(list)
    for item in items:
        cells[item["split"], item["lang"]].append(item)
    chosen, round_ = [], 0
    while len(chosen) < count and any(len(v) > round_ for v in cells.values()):
        chosen += [v[round_] for _, v in sorted(cells.items()) if len(v) > round_]
        round_ += 1
    return chosen[:count]


def _one_line(text: str) -> str:
    return " ".join(text.split())
