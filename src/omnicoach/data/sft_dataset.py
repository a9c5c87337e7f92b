"""Fine-tuning conversations generated from the knowledge base (data/kb).

    python -m omnicoach.data.sft_dataset [--out data/sft]
    python -m omnicoach.data.sft_dataset --grounded 0.5 --out data/sft-grounded

Each exercise gives questions about seven aspects (what it is, how to do it, muscles, common
mistakes, cautions, a beginner version, benefits) in English and Bengali, phrased several ways,
answered concisely from its knowledge-base entry — the FitLens style: a direct answer, the
facts, nothing else. The phrasings (knowledge/phrasings.py) and the answers
(knowledge/answers.answer) are the assistant's own, so training and serving agree. Some become
two- or three-turn conversations ("What is crow pose?" → "How do I do it?"). Splits, so that
evaluation sees what training did not:

- test_unseen: every conversation about a tenth of the exercises, held out whole;
- test_known: the other exercises asked with phrasings held out from training (one phrasing
  per aspect and language is never used in train or validation);
- validation: a seeded tenth of the remaining conversations; train: the rest.

With --grounded, a share of train and validation is grounded (ground_some): the last question
carries the sources the server's retriever finds, and the answer cites the right one — how the
model learns to answer from retrieved passages, with citations.
"""

import argparse
import hashlib
import json
import random
from pathlib import Path

from omnicoach.config import REPO
from omnicoach.knowledge import grounding
from omnicoach.knowledge.answers import answer
from omnicoach.knowledge.base import KB_DIR, load_entries, load_vocabulary
from omnicoach.knowledge.grounding import grounded_messages
from omnicoach.knowledge.phrasings import FOLLOW_UPS, QUESTIONS
from omnicoach.models.registry import BASE_CHAT_MODEL

__all__ = ["FOLLOW_UPS", "QUESTIONS", "answer", "build", "ground_some"]

SEED = 7


def _held_out(entry_id: str) -> bool:
    """About a tenth of the exercises, chosen by a hash of the id (stable as the KB grows)."""
    return int(hashlib.sha1(entry_id.encode()).hexdigest(), 16) % 10 == 0


def build(kb_dir: Path = KB_DIR, seed: int = SEED) -> dict[str, list[dict]]:
    vocabulary = load_vocabulary(kb_dir)
    rng = random.Random(seed)
    splits = {"train": [], "validation": [], "test_known": [], "test_unseen": []}
    for entry in load_entries(kb_dir):
        unseen = _held_out(entry["id"])
        for lang, aspects in QUESTIONS.items():
            names = [entry["name"][lang]] + (entry.get("aliases", []) if lang == "en" else [])
            for aspect, phrasings in aspects.items():
                for index, phrasing in enumerate(phrasings):
                    held_phrasing = index == len(phrasings) - 1
                    question = phrasing.format(name=rng.choice(names))
                    messages = [
                        {"role": "user", "content": question},
                        {"role": "assistant", "content": answer(entry, aspect, lang, vocabulary)},
                    ]
                    if aspect == "what" and not held_phrasing:  # a conversation goes on
                        for follow in rng.sample(sorted(FOLLOW_UPS[lang]), rng.randint(0, 2)):
                            messages += [
                                {"role": "user", "content": FOLLOW_UPS[lang][follow]},
                                {
                                    "role": "assistant",
                                    "content": answer(entry, follow, lang, vocabulary),
                                },
                            ]
                    row = {
                        "messages": messages,
                        "exercise": entry["id"],
                        "aspect": aspect,
                        "lang": lang,
                    }
                    if unseen:
                        splits["test_unseen"].append(row)
                    elif held_phrasing:
                        splits["test_known"].append(row)
                    elif rng.random() < 0.1:
                        splits["validation"].append(row)
                    else:
                        splits["train"].append(row)
    return splits


def cite(text: str, number: int) -> str:
    """TEXT with its source number at the end, as the grounded prompt asks: "… [2]"."""
    return f"{text.rstrip()} [{number}]"


def ground_some(rows: list[dict], retrieve, fraction: float, seed: int) -> list[dict]:
    """A seeded FRACTION of ROWS as the server grounds them: the passages the real retriever
    finds for the last question go into it (knowledge/grounding.py), and the answer cites the
    passage about its exercise when one was found — else it answers unchanged, as it must when
    retrieval brings nothing useful. So the model learns to read and cite sources, also about
    exercises it was never trained on (test_unseen is not grounded here: the evaluation adds
    retrieval itself). RETRIEVE(messages) returns the passages."""
    rng = random.Random(seed)
    grounded = []
    for row in rows:
        if rng.random() >= fraction:
            grounded.append(row)
            continue
        messages = row["messages"]
        asked = messages[:-1]
        passages = retrieve(asked)
        ours = [i for i, p in enumerate(passages, 1) if p.id.split(":")[1] == row["exercise"]]
        answer_text = messages[-1]["content"]
        if ours:
            answer_text = cite(answer_text, ours[0])
        prompt = grounded_messages(asked, passages)
        reply = {"role": "assistant", "content": answer_text}
        grounded.append({**row, "messages": [*prompt, reply], "grounded": bool(passages)})
    return grounded


def retriever():
    """The server's retrieval (index, source count and token budget), for ground_some."""
    from omnicoach.config import load_settings
    from omnicoach.knowledge.library import Knowledge
    from omnicoach.models.registry import ModelRegistry

    settings = load_settings()
    registry = ModelRegistry(settings)
    index = Knowledge(registry.embedder(), settings.model_cache_dir).index
    llm = registry.chat(BASE_CHAT_MODEL)

    def retrieve(messages):
        found = grounding.retrieve(index, messages, settings.rag_passages)
        return grounding.within_budget(found, llm.count_tokens, settings.rag_max_tokens)

    return retrieve


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=Path, default=REPO / "data" / "sft")
    parser.add_argument(
        "--grounded",
        type=float,
        default=0.0,
        help="write only train and validation, this share of them with retrieved sources",
    )
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    splits = build()
    if args.grounded > 0:  # a training set: the test splits stay as they are, in data/sft
        retrieve = retriever()
        splits = {
            name: ground_some(splits[name], retrieve, args.grounded, SEED)
            for name in ("train", "validation")
        }
    for name, rows in splits.items():
        with open(args.out / f"{name}.jsonl", "w", encoding="utf-8") as f:
            for row in rows:
                f.write(json.dumps(row, ensure_ascii=False) + "\n")
        print(f"{name}: {len(rows)} conversations")


if __name__ == "__main__":
    main()
