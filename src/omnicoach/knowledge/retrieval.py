"""Retrieval: MiniLM embeddings of the passages, cosine top-k for a question.

Bengali is romanised before embedding (models/romanise.py), as for the router: MiniLM's
vocabulary is English. The knowledge-base embeddings are computed once and cached beside the
model cache, keyed by the passages' content, so a changed KB is re-embedded automatically.
"""

import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from omnicoach.knowledge.base import Passage
from omnicoach.models.romanise import romanise_bengali

# Below this cosine a passage is not about the question (measured on the KB: greetings and
# off-topic questions score under 0.1 against every exercise, questions about one 0.5–0.7).
MIN_SCORE = 0.35
# Added to the cosine of a passage whose name the question says: "how do I do boat pose" is
# about Boat Pose even when another pose's text happens to be closer. It matters most for
# Bengali, which MiniLM (an English model) embeds poorly even romanised.
NAME_BONUS = 0.5
# Passages scoring this far below the best one are left out: they add prompt length (every
# passage costs the first token ~0.3 s at one thread) rather than knowledge.
WITHIN_BEST = 0.15
# Weight of the previous question in a follow-up's query (1 = as much as the follow-up).
CONTEXT_WEIGHT = 0.5


@dataclass(frozen=True)
class Hit:
    passage: Passage
    score: float


def _says(text: str, name: str) -> bool:
    """Whether TEXT contains NAME as whole words (Bengali has no \\b: letters then count)."""
    start = text.find(name)
    while start >= 0:
        before = text[start - 1] if start else " "
        after = text[start + len(name)] if start + len(name) < len(text) else " "
        if not before.isalnum() and not after.isalnum():
            return True
        start = text.find(name, start + 1)
    return False


class PassageIndex:
    def __init__(self, embedder, passages: list[Passage], cache_dir: Path | None = None):
        self.embedder, self.passages = embedder, passages
        self.vectors = self._vectors(cache_dir)

    def _vectors(self, cache_dir: Path | None) -> np.ndarray:
        texts = [romanise_bengali(p.text) for p in self.passages]
        if not texts:
            return np.zeros((0, self.embedder.dimension), dtype=np.float32)
        key = hashlib.sha256("\0".join(texts).encode()).hexdigest()[:16]
        cache = Path(cache_dir) / f"kb-index-{key}.npy" if cache_dir else None
        if cache and cache.is_file():
            return np.load(cache)
        vectors = self.embedder.embed(texts)
        if cache:
            cache.parent.mkdir(parents=True, exist_ok=True)
            np.save(cache, vectors)
        return vectors

    def search(
        self,
        question: str,
        k: int = 3,
        min_score: float = MIN_SCORE,
        lang: str | None = None,
        context: str = "",
    ) -> list[Hit]:
        """The K passages most similar to QUESTION (in LANG only, when given), best first.
        CONTEXT (the question before it) counts at CONTEXT_WEIGHT: what a follow-up's "it"
        is, while the follow-up itself says which aspect is wanted."""
        if not len(self.passages):
            return []
        texts = [romanise_bengali(t) for t in (question, context) if t]
        vectors = self.embedder.embed(texts)
        query = vectors[0] + CONTEXT_WEIGHT * vectors[1] if context else vectors[0]
        scores = self.vectors @ (query / np.linalg.norm(query))
        asked = f"{question}\n{context}".lower()
        named = [any(_says(asked, n) for n in p.names) for p in self.passages]
        scores = scores + NAME_BONUS * np.array(named, dtype=np.float32)
        hits = []
        for i in np.argsort(-scores):
            if scores[i] < min_score or len(hits) == k:
                break
            if hits and scores[i] < hits[0].score - WITHIN_BEST:
                break
            if lang is None or self.passages[i].lang == lang:
                hits.append(Hit(self.passages[i], float(scores[i])))
        return hits
