"""Scores of generated answers against reference answers: semantic similarity and BLEU.

Semantic similarity is the cosine of MiniLM sentence embeddings (the bundled
all-MiniLM-L6-v2). MiniLM's vocabulary is English: Bengali script becomes unknown tokens, so
Bengali texts are romanised first (models/romanise.py, as the prompt router does) — the score
then compares transliterated words, which is coarser than for English; compare Bengali
figures with each other, not with English ones. BLEU is sacrebleu's corpus BLEU with its
default 13a tokenisation (words split at spaces and punctuation, which suits both scripts).
"""

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
