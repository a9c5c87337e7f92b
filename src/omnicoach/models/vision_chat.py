"""Answering a message that holds a picture: encoder → projector → the chat LLM with the
vision adapter (artifacts/vlm, trained by training/vlm.py).

The vision LLM is a copy of the chat model it was trained on with the stage-2 LoRA merged, in
its own fast engine: text-only questions keep being answered by the chat model untouched.
"""

import hashlib
import threading
from collections import OrderedDict
from pathlib import Path

import torch
from PIL import Image

from omnicoach.artifacts import read_manifest
from omnicoach.errors import ModelFileError
from omnicoach.models.image_encoder import ImageEncoder
from omnicoach.models.llm import ChatLLM, Generation, ImageInput
from omnicoach.models.sampling import SamplingParams
from omnicoach.models.vision_language import IMAGE_MARKER, Projector, read_projector

# Pictures whose encoded input is kept, newest last: naming the exercise in a picture and then
# answering about it (the vision model's own answer, assistant/answering.py) encodes it once.
RECENT_PICTURES = 8


class VisionChat:
    def __init__(self, encoder: ImageEncoder, projector: Projector, llm: ChatLLM):
        self.encoder, self.projector, self.llm = encoder, projector.eval(), llm
        self.name = llm.name
        self._recent: OrderedDict[str, ImageInput] = OrderedDict()  # digest → input
        self._recent_lock = threading.Lock()

    @property
    def image_tokens(self) -> int:
        """Positions a picture takes in the prompt."""
        return self.encoder.tokens * self.projector.tokens_per_feature

    @torch.inference_mode()
    def image_input(self, image: Image.Image) -> ImageInput:
        """IMAGE encoded and projected into the LLM's embedding space (the last
        RECENT_PICTURES pictures' are kept, by content)."""
        digest = image_digest(image)
        with self._recent_lock:
            if (recent := self._recent.get(digest)) is not None:
                self._recent.move_to_end(digest)
                return recent
        features = self.encoder.encode([image])[0]  # [tokens, feature_dim]
        made = ImageInput(self.projector(features), digest)
        with self._recent_lock:
            self._recent[digest] = made
            if len(self._recent) > RECENT_PICTURES:
                self._recent.popitem(last=False)
        return made

    def stream(
        self, messages: list[dict], image: Image.Image, params: SamplingParams | None = None
    ) -> Generation:
        """Generate for MESSAGES, one of which holds IMAGE_MARKER where IMAGE goes."""
        if not any(IMAGE_MARKER in m["content"] for m in messages):
            raise ValueError(f"no message holds {IMAGE_MARKER}")
        return self.llm.stream(messages, params, self.image_input(image))


def image_digest(image: Image.Image) -> str:
    """Names a picture by its content: the same pixels, the same digest."""
    return hashlib.sha256(image.tobytes() + repr(image.size).encode()).hexdigest()


def read_vision_artifact(directory: Path) -> tuple[dict, Projector]:
    """vision.json and the trained projector of the artifact in DIRECTORY, verified against
    its manifest; a missing artifact is a clear error naming the command that builds it."""
    directory = Path(directory)
    if not (directory / "manifest.json").is_file():
        raise ModelFileError(
            f"image understanding is not installed: {directory} holds no trained vision model; "
            "build it with `omnicoach train vlm` (README, Seeing)"
        )
    read_manifest(directory)  # raises ModelFileError on a corrupt or edited file
    return read_projector(directory)
