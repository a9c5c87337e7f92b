"""The image–text alignment model: LiT-style (Zhai et al. 2022, "locked-image tuning"), built
from the two bundled encoders because no CLIP weights exist offline.

Both encoders stay frozen — EfficientNet-Lite0's pooled features (1280) for an image, MiniLM's
sentence embedding (384) for a text — and only two linear heads into a shared 256-d space and
a temperature are trained, with CLIP's symmetric contrastive loss (training/alignment.py).
It serves as this project's CLIP: CLIP score of generated images, and zero-shot recognition
of the exercise a generated image shows (evaluation/image_generation.py). The artifact
(artifacts/alignment) holds the heads (~1.3 MB) and a manifest.
"""

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from omnicoach.errors import ModelFileError

IMAGE_DIM, TEXT_DIM, SHARED_DIM = 1280, 384, 256
HEADS = "heads.safetensors"


class AlignmentHeads(nn.Module):
    def __init__(self):
        super().__init__()
        self.image = nn.Linear(IMAGE_DIM, SHARED_DIM)
        self.text = nn.Linear(TEXT_DIM, SHARED_DIM)
        # CLIP's learnable temperature, as log(1/τ), starting at τ = 0.07.
        self.logit_scale = nn.Parameter(torch.tensor(float(np.log(1 / 0.07))))

    def image_vectors(self, features: torch.Tensor) -> torch.Tensor:
        return F.normalize(self.image(features), dim=-1)

    def text_vectors(self, embeddings: torch.Tensor) -> torch.Tensor:
        return F.normalize(self.text(embeddings), dim=-1)


class Alignment:
    """The trained heads over the frozen encoders: image and text vectors, CLIP score, and
    which of several texts an image matches best."""

    def __init__(self, heads: AlignmentHeads, image_encoder, embedder):
        self.heads, self.image_encoder, self.embedder = heads.eval(), image_encoder, embedder

    @torch.inference_mode()
    def images(self, pixels: torch.Tensor) -> torch.Tensor:
        """Unit vectors of uint8 images [N, 3, H, W]."""
        return self.heads.image_vectors(self.image_encoder.pooled(pixels))

    @torch.inference_mode()
    def texts(self, texts: list[str]) -> torch.Tensor:
        return self.heads.text_vectors(torch.from_numpy(self.embedder.embed(texts)).float())

    def clip_score(self, pixels: torch.Tensor, texts: list[str]) -> torch.Tensor:
        """Per pair: 100 × max(cosine, 0) — CLIP score's definition (Hessel et al. 2021, as
        torchmetrics computes it), with these heads in place of CLIP."""
        cosine = (self.images(pixels) * self.texts(texts)).sum(-1)
        return 100 * cosine.clamp(min=0)

    def classify(self, pixels: torch.Tensor, texts: list[str]) -> torch.Tensor:
        """For each image, the index of the text it matches best (zero-shot classification)."""
        return (self.images(pixels) @ self.texts(texts).T).argmax(-1)


def load_alignment(directory: Path, image_encoder, embedder) -> Alignment:
    """The heads of the artifact in DIRECTORY, verified against its manifest."""
    from safetensors.torch import load_file

    from omnicoach.artifacts import read_manifest

    directory = Path(directory)
    if not (directory / "manifest.json").is_file():
        raise ModelFileError(
            f"no alignment model in {directory}: build it with `omnicoach train alignment` "
            "(README, Drawing)"
        )
    read_manifest(directory)
    heads = AlignmentHeads()
    heads.load_state_dict({k: v.float() for k, v in load_file(directory / HEADS).items()})
    return Alignment(heads, image_encoder, embedder)
