import numpy as np


def test_minilm_embeddings_rank_related_text_higher(embedder):
    vectors = embedder.embed(
        [
            "How do I do downward facing dog?",
            "Steps for the adho mukha svanasana yoga pose",
            "The stock market fell sharply on Tuesday.",
        ]
    )
    assert vectors.shape == (3, 384) == (3, embedder.dimension)
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    related, unrelated = vectors[0] @ vectors[1], vectors[0] @ vectors[2]
    assert related > unrelated + 0.2
