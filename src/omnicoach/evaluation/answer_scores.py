"""Scores of generated answers against reference answers: semantic similarity, BLEU, and the
share of a reference's steps an answer gives.

Semantic similarity is the cosine of MiniLM sentence embeddings (the bundled
all-MiniLM-L6-v2). MiniLM's vocabulary is English: Bengali script becomes unknown tokens, so
Bengali texts are romanised first (models/romanise.py, as the prompt router does) — the score
then compares transliterated words, which is coarser than for English; compare Bengali
figures with each other, not with English ones. BLEU is sacrebleu's corpus BLEU with its
default 13a tokenisation (words split at spaces and punctuation, which suits both scripts).
"""

import re
from difflib import SequenceMatcher

import numpy as np

from omnicoach.models.romanise import has_bengali, romanise_bengali


def _embeddable(text: str) -> str:
    return romanise_bengali(text) if has_bengali(text) else text


def semantic_similarity(embedder, predictions: list[str], references: list[str]) -> list[float]:
    """Cosine similarity of each prediction to its reference (unit vectors: a dot product)."""
    if len(predictions) != len(references):
        raise ValueError(f"{len(predictions)} predictions for {len(references)} references")
    if not predictions:
        return []
    vectors = embedder.embed([_embeddable(t) for t in predictions + references])
    ours, theirs = vectors[: len(predictions)], vectors[len(predictions) :]
    return np.einsum("ij,ij->i", ours, theirs).astype(float).tolist()


def bleu(predictions: list[str], references: list[str]) -> float:
    """Corpus BLEU (0-100) of PREDICTIONS against one reference each."""
    import sacrebleu

    return sacrebleu.corpus_bleu(predictions, [references]).score


# A reference step counts as given when one line of the answer has at least this share of
# its words in order (difflib's ratio over word lists): a step copied with a word or two
# changed passes, the same vocabulary in another order ("bend your knees… push your hips")
# does not — where MiniLM's cosine would still score ~0.9.
STEP_MATCH = 0.8


def step_recall(answer: str, steps: list[str]) -> float:
    """The share of STEPS the answer gives (see STEP_MATCH); each line of the answer, with
    any "1." or "-" in front, is compared with each step."""
    lines = [re.sub(r"^\s*(\d+[.)]|[-*•])\s*", "", line) for line in answer.splitlines()]
    lines = [line.lower().split() for line in lines if line.strip()]

    def given(step: str) -> bool:
        words = step.lower().split()
        return any(SequenceMatcher(None, words, line).ratio() >= STEP_MATCH for line in lines)

    return sum(given(step) for step in steps) / len(steps) if steps else 0.0
