"""Answering a message that holds a picture: encoder → projector → the chat LLM with the
vision adapter (artifacts/vlm, trained by training/vlm.py).

The vision LLM is a copy of the chat model it was trained on with the stage-2 LoRA merged, in
its own fast engine: text-only questions keep being answered by the chat model untouched.
"""

import hashlib
import json
from pathlib import Path

import torch
from PIL import Image

from omnicoach.artifacts import read_manifest
from omnicoach.errors import ModelFileError
from omnicoach.models.image_encoder import ImageEncoder
from omnicoach.models.llm import ChatLLM, Generation, ImageInput
from omnicoach.models.sampling import SamplingParams
from omnicoach.models.vision_language import IMAGE_MARKER, Projector


class VisionChat:
    def __init__(self, encoder: ImageEncoder, projector: Projector, llm: ChatLLM):
        self.encoder, self.projector, self.llm = encoder, projector.eval(), llm
        self.name = llm.name

    @torch.inference_mode()
    def image_input(self, image: Image.Image) -> ImageInput:
        features = self.encoder.encode([image])[0]  # [tokens, feature_dim]
        digest = hashlib.sha256(image.tobytes() + repr(image.size).encode()).hexdigest()
        return ImageInput(self.projector(features), digest)

    def stream(
        self, messages: list[dict], image: Image.Image, params: SamplingParams | None = None
    ) -> Generation:
        """Generate for MESSAGES, one of which holds IMAGE_MARKER where IMAGE goes."""
        if not any(IMAGE_MARKER in m["content"] for m in messages):
            raise ValueError(f"no message holds {IMAGE_MARKER}")
        return self.llm.stream(messages, params, self.image_input(image))


def read_vision_artifact(directory: Path) -> tuple[dict, Projector]:
    """vision.json and the trained projector of the artifact in DIRECTORY, verified against
    its manifest; a missing artifact is a clear error naming the command that builds it."""
    from safetensors.torch import load_file

    directory = Path(directory)
    if not (directory / "manifest.json").is_file():
        raise ModelFileError(
            f"image understanding is not installed: {directory} holds no trained vision model; "
            "build it with `omnicoach train vlm` (README, Seeing)"
        )
    read_manifest(directory)  # raises ModelFileError on a corrupt or edited file
    vision = json.loads((directory / "vision.json").read_text())
    projector = Projector(vision["feature_dim"], vision["hidden"])
    weights = load_file(directory / "projector.safetensors")
    projector.load_state_dict({k: v.float() for k, v in weights.items()})
    return vision, projector
