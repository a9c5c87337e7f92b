"""Training data for the image generator: the rendered exercise figures (data/exercise_images,
the same train and test splits as the vision model) at 64×64, and prompts naming their
exercise.

Prompts are built from templates; the held-out templates are never trained on, so the
evaluation asks for exercises in words the generator has not seen ("draw a person doing
boat pose"). An exercise is named by its English or (for yoga) its Sanskrit name.
"""

import json
from pathlib import Path

import torch
from PIL import Image
from tqdm.auto import tqdm

from omnicoach.models.image_encoder import uint8_pixels

TRAIN_TEMPLATES = [
    "{name}",
    "a person doing {name}",
    "a person in {name}",
    "{name}, {kind}",
    "someone practising {name}",
    "a figure doing {name} {where}",
]
HELD_OUT_TEMPLATES = [
    "draw a person doing {name}",
    "a picture of someone in {name}",
    "show me {name}",
]
WHERE = {"yoga_pose": "on a mat"}  # others: "in a gym"


def names(entry: dict) -> list[str]:
    """The names a prompt may call the exercise by."""
    return [entry["name"]["en"]] + ([entry["sanskrit"]] if entry.get("sanskrit") else [])


def prompts(entry: dict, templates: list[str]) -> list[str]:
    kind = "yoga pose" if entry["kind"] == "yoga_pose" else "exercise"
    where = WHERE.get(entry["kind"], "in a gym")
    return [
        template.format(name=name, kind=kind, where=where)
        for template in templates
        for name in names(entry)
    ]


def load_pixels(split_dir: Path, size: int = 64, progress: bool = True):
    """(uint8 tensor [N, 3, SIZE, SIZE], exercise id per image) of the rendered split in
    SPLIT_DIR (its metadata.jsonl), downscaled once and cached beside the images."""
    split_dir = Path(split_dir)
    lines = (split_dir / "metadata.jsonl").read_text().splitlines()
    metadata = [json.loads(line) for line in lines if line]
    cache = split_dir / f"pixels-{size}.pt"
    names_key = [m["file_name"] for m in metadata]
    if cache.is_file():
        cached = torch.load(cache, weights_only=True)
        if cached["file_names"] == names_key:
            return cached["pixels"], [m["exercise_id"] for m in metadata]
    pixels = torch.empty(len(metadata), 3, size, size, dtype=torch.uint8)
    for i, meta in enumerate(tqdm(metadata, desc="images to 64×64", disable=not progress)):
        image = Image.open(split_dir / meta["file_name"]).convert("RGB")
        image = image.resize((size, size), Image.Resampling.LANCZOS)
        pixels[i] = uint8_pixels(image)
    torch.save({"file_names": names_key, "pixels": pixels}, cache)
    return pixels, [m["exercise_id"] for m in metadata]


def to_model_range(pixels: torch.Tensor) -> torch.Tensor:
    """uint8 [0, 255] → float [-1, 1], the range the autoencoder works in."""
    return pixels.float() / 127.5 - 1.0
