"""Sentence embeddings (MiniLM by default) through sentence-transformers."""

from pathlib import Path

import numpy as np

from omnicoach.errors import ModelFileError


class TextEmbedder:
    def __init__(self, directory: Path, name: str):
        from sentence_transformers import SentenceTransformer  # heavy import, only when used

        directory = Path(directory)
        if not (directory / "config.json").is_file():
            raise ModelFileError(
                f"{directory} is not a Hugging Face / sentence-transformers model directory"
            )
        try:
            self.model = SentenceTransformer(str(directory), device="cpu", local_files_only=True)
        except Exception as exc:  # corrupt weights fail deep inside the loaders
            raise ModelFileError(f"cannot load embedding model from {directory}: {exc}") from exc
        self.name = name

    @property
    def dimension(self) -> int:
        return self.model.get_embedding_dimension()

    def embed(self, texts: list[str], normalize: bool = True) -> np.ndarray:
        """One row per text, float32; unit length when normalize is true (cosine = dot)."""
        return self.model.encode(
            texts, convert_to_numpy=True, normalize_embeddings=normalize, show_progress_bar=False
        ).astype(np.float32)
