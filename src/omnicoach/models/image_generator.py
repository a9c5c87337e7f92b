"""The image generator: latent diffusion trained here on the rendered exercise figures, run as
a diffusers StableDiffusionPipeline.

No diffusion weights exist offline, so every part but the text encoder is trained here
(training/imagegen.py): a small AutoencoderKL (64×64×3 pixels ↔ 16×16×4 latents) and a
UNet2DConditionModel on its latents, conditioned on the token states of the bundled MiniLM
(32 tokens × 384). Latent rather than pixel space by measurement: one training step of a
64×64 pixel UNet took 8.5 s here, a latent one 1.5 s (benchmarks/imagegen_step.py, README).

Assembled as a StableDiffusionPipeline (the text encoder a BertModel, the tokenizer MiniLM's,
its length 32), so sampling, classifier-free guidance, negative prompts, schedulers and LoRA
(`load_lora_weights`) are diffusers' own, and a real Stable Diffusion directory
(OMNICOACH_IMAGE_MODEL) runs through the same code. The artifact (artifacts/imagegen) holds
the autoencoder and the UNet in fp16 with the scheduler's config; MiniLM is the bundled one,
not copied.
"""

import json
import random
import re
import threading
from pathlib import Path

import torch
from PIL import Image

from omnicoach.errors import InvalidRequestError, ModelFileError

SIZE = 64  # pixels a side
EXERCISE_PROMPT = "a person doing {name}"  # one of the training wordings (data/drawing_dataset)
# Classifier-free guidance by default: chosen by `omnicoach eval imagegen --sweep-guidance`
# (README, Drawing: Evaluation), on a training wording so the held-out ones stay unseen.
DEFAULT_GUIDANCE = 8.0
TEXT_TOKENS = 32  # MiniLM tokens the UNet attends to: a prompt is cut to this
TEXT_DIM = 384
LATENT_CHANNELS = 4


def new_autoencoder():
    """64×64×3 ↔ 16×16×4 (three levels, two downsamplings), 2.7 M parameters."""
    from diffusers import AutoencoderKL

    return AutoencoderKL(
        in_channels=3,
        out_channels=3,
        down_block_types=("DownEncoderBlock2D",) * 3,
        up_block_types=("UpDecoderBlock2D",) * 3,
        block_out_channels=(32, 64, 128),
        layers_per_block=1,
        latent_channels=LATENT_CHANNELS,
        norm_num_groups=32,
        sample_size=SIZE,
    )


def new_unet():
    """A UNet on 16×16×4 latents with cross-attention to the prompt's token states at the two
    coarser levels, 11.5 M parameters: 23 MB in fp16, so the artifact stays under 40 MB."""
    from diffusers import UNet2DConditionModel

    return UNet2DConditionModel(
        sample_size=SIZE // 4,
        in_channels=LATENT_CHANNELS,
        out_channels=LATENT_CHANNELS,
        block_out_channels=(64, 128, 192),
        layers_per_block=1,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"),
        cross_attention_dim=TEXT_DIM,
        attention_head_dim=8,
        norm_num_groups=32,
    )


def training_scheduler():
    """The noise schedule it is trained with: cosine betas (kinder than SD's scaled-linear to
    small images, where a little noise already hides the figure) and v-prediction (well
    behaved at both ends of the schedule, and what progressive distillation needs)."""
    from diffusers import DDPMScheduler

    return DDPMScheduler(
        num_train_timesteps=1000,
        beta_schedule="squaredcos_cap_v2",
        prediction_type="v_prediction",
        clip_sample=False,  # latents are not bounded to [-1, 1]
        timestep_spacing="trailing",  # few-step sampling starts from the last (noisiest) step
        steps_offset=1,
    )


def sampling_scheduler(config):
    """DPM-Solver++ (multistep) on the training schedule: good images in ~20 steps."""
    from diffusers import DPMSolverMultistepScheduler

    return DPMSolverMultistepScheduler.from_config(config)


def text_parts():
    """(tokenizer, text encoder): the bundled MiniLM as a plain BertModel, prompts padded or cut
    to TEXT_TOKENS."""
    from transformers import AutoTokenizer, BertModel

    from omnicoach.models.bundled import minilm_dir

    tokenizer = AutoTokenizer.from_pretrained(minilm_dir(), model_max_length=TEXT_TOKENS)
    encoder = BertModel.from_pretrained(minilm_dir()).eval()
    return tokenizer, encoder.requires_grad_(False)


def assemble(autoencoder, unet, scheduler, text=None):
    """A StableDiffusionPipeline of these parts (TEXT: (tokenizer, encoder), else MiniLM's)."""
    from diffusers import StableDiffusionPipeline

    tokenizer, text_encoder = text or text_parts()
    pipeline = StableDiffusionPipeline(
        vae=autoencoder,
        text_encoder=text_encoder,
        tokenizer=tokenizer,
        unet=unet,
        scheduler=scheduler,
        safety_checker=None,  # figures drawn from our own renders; no checker exists offline
        feature_extractor=None,
        requires_safety_checker=False,
    )
    pipeline.set_progress_bar_config(disable=True)
    return pipeline


@torch.inference_mode()
def encode_prompts(pipeline, prompts: list[str]) -> torch.Tensor:
    """The token states the UNet attends to, exactly as the pipeline computes them."""
    embeddings, _ = pipeline.encode_prompt(prompts, "cpu", 1, False)
    return embeddings


def load_generator(directory: Path):
    """The pipeline of the artifact in DIRECTORY (autoencoder/, unet/, scheduler/), verified
    against its manifest; a missing one is a clear error naming the command that builds it."""
    from diffusers import AutoencoderKL, UNet2DConditionModel

    from omnicoach.artifacts import read_manifest

    directory = Path(directory)
    if not (directory / "manifest.json").is_file():
        raise ModelFileError(
            f"image generation is not installed: {directory} holds no trained generator; "
            "build it with `omnicoach train imagegen` (README, Drawing)"
        )
    read_manifest(directory)  # raises ModelFileError on a corrupt or edited file
    autoencoder = AutoencoderKL.from_pretrained(
        directory / "autoencoder", torch_dtype=torch.float32
    )
    unet = UNet2DConditionModel.from_pretrained(directory / "unet", torch_dtype=torch.float32)
    return assemble(autoencoder.eval(), unet.eval(), sampling_scheduler(unet_scheduler(directory)))


def unet_scheduler(directory: Path) -> dict:
    return json.loads((Path(directory) / "scheduler" / "scheduler_config.json").read_text())


class DrawingSettingError(InvalidRequestError):
    """A drawing setting this generator cannot take; PARAM names it."""

    def __init__(self, param: str, message: str):
        super().__init__(message)
        self.param = param


MAX_IMAGES = 4  # per request: each costs seconds of CPU
MAX_STEPS = 100
MAX_SIDE = 1024


def says_word(text: str, word: str) -> bool:
    """Whether TEXT has WORD (a LoRA's trigger) as a whole word, in any case."""
    return re.search(rf"(?<!\w){re.escape(word.lower())}(?!\w)", text.lower()) is not None


class ImageGenerator:
    """What the server draws with: the artifact trained here, or a diffusers directory
    (OMNICOACH_IMAGE_MODEL). One drawing at a time: a pipeline's scheduler holds per-call
    state, and two would only share the same cores."""

    def __init__(
        self,
        pipeline,
        name: str,
        native_size: int,
        upscales: bool,
        lora_dir: Path | None = None,
        exercise_prompt: str | None = None,
    ):
        self.pipeline, self.name, self.native_size = pipeline, name, native_size
        # How this model was taught to name an exercise ("a person doing {name}"); None for a
        # pipeline trained elsewhere, which reads a request as it is.
        self.exercise_prompt = exercise_prompt
        # Our generator draws 64×64; a larger requested size is that drawing scaled up. A real
        # pipeline draws at the requested size itself.
        self.upscales = upscales
        # LoRAs trained by POST /train land in LORA_DIR/<name>/ (lora.json says the trigger).
        self.lora_dir = lora_dir
        self._loaded_loras: dict[str, float] = {}  # name → when its lora.json was written
        self._lock = threading.Lock()

    def loras(self) -> dict[str, dict]:
        """The LoRAs trained for this generator, by name (lora.json of each)."""
        found = {}
        for described in sorted(self.lora_dir.glob("*/lora.json")) if self.lora_dir else []:
            lora = json.loads(described.read_text())
            if lora.get("base") == self.name:  # one trained on another model does not fit
                found[lora["name"]] = lora | {"path": str(described.parent)}
        return found

    def _choose_lora(self, prompt: str, name: str | None) -> dict | None:
        """The LoRA NAME, else the one whose trigger word the prompt says; None for none."""
        loras = self.loras()
        if name is not None:
            if name not in loras:
                known = ", ".join(loras) or "none yet (train one with POST /train)"
                raise DrawingSettingError(
                    "lora", f"lora {name!r} is not one of this model's: {known}"
                )
            return loras[name]
        return next((lora for lora in loras.values() if says_word(prompt, lora["trigger"])), None)

    def _use(self, lora: dict | None) -> None:
        """Turn LORA on in the pipeline (loading it the first time), or every LoRA off."""
        if lora is None:
            if self._loaded_loras:
                self.pipeline.disable_lora()
            return
        name, written = lora["name"], (Path(lora["path"]) / "lora.json").stat().st_mtime
        if self._loaded_loras.get(name) != written:  # new, or trained again under its name
            if name in self._loaded_loras:
                self.pipeline.delete_adapters(name)
            self.pipeline.load_lora_weights(lora["path"], adapter_name=name)
            self._loaded_loras[name] = written
        self.pipeline.enable_lora()
        self.pipeline.set_adapters([name])

    def check_size(self, size: str | None) -> tuple[int, int]:
        """(width, height) of SIZE ("WxH"; default the native size); DrawingSettingError
        when it is malformed or not one this model draws."""
        if size is None:
            return self.native_size, self.native_size
        match = re.fullmatch(r"(\d+)x(\d+)", size.strip())
        if not match:
            raise DrawingSettingError("size", f'size must look like "256x256", got {size!r}')
        width, height = int(match[1]), int(match[2])
        if min(width, height) < 1:  # "0x0" matches the pattern and is a multiple of anything
            raise DrawingSettingError("size", f"size must be at least 1 pixel a side; got {size}")
        if self.upscales and (width != height or width % self.native_size or width > MAX_SIDE):
            raise DrawingSettingError(
                "size",
                f"size must be square, a multiple of {self.native_size} and at most {MAX_SIDE} "
                f'(e.g. "{self.native_size * 4}x{self.native_size * 4}"): {self.name} draws '
                f"{self.native_size}×{self.native_size} pictures and scales them up; got {size}",
            )
        if not self.upscales and (width % 8 or height % 8 or max(width, height) > MAX_SIDE):
            raise DrawingSettingError(
                "size", f"size must be multiples of 8, at most {MAX_SIDE} a side; got {size}"
            )
        return width, height

    def generate(
        self,
        prompt: str,
        negative_prompt: str | None = None,
        steps: int = 20,
        guidance: float = DEFAULT_GUIDANCE,
        seed: int | None = None,
        n: int = 1,
        size: str | None = None,
        lora: str | None = None,
    ) -> tuple[list, int, str | None]:
        """(PIL images, the seed used, the LoRA used): image i is drawn from seed + i, so any
        one of them can be drawn again alone. LORA names one (else a prompt that says a
        LoRA's trigger word calls it up)."""
        if not prompt.strip():
            raise DrawingSettingError("prompt", "prompt is empty: say what to draw")
        if not 1 <= n <= MAX_IMAGES:
            raise DrawingSettingError("n", f"n must be 1–{MAX_IMAGES}, got {n}")
        if not 1 <= steps <= MAX_STEPS:
            raise DrawingSettingError("steps", f"steps must be 1–{MAX_STEPS}, got {steps}")
        if not 0 <= guidance <= 30:
            raise DrawingSettingError("guidance", f"guidance must be 0–30, got {guidance}")
        width, height = self.check_size(size)
        seed = random.randrange(2**31) if seed is None else seed
        draw = (self.native_size, self.native_size) if self.upscales else (width, height)
        with self._lock, torch.inference_mode():
            chosen = self._choose_lora(prompt, lora)
            self._use(chosen)
            images = self.pipeline(
                [prompt] * n,
                negative_prompt=[negative_prompt] * n if negative_prompt else None,
                num_inference_steps=steps,
                guidance_scale=guidance,
                width=draw[0],
                height=draw[1],
                generator=[torch.Generator().manual_seed(seed + i) for i in range(n)],
            ).images
        if (width, height) != draw:
            images = [image.resize((width, height), Image.Resampling.LANCZOS) for image in images]
        return images, seed, chosen["name"] if chosen else None


def load_image_generator(
    directory: Path, name: str = "omnicoach-imagegen", lora_dir: Path | None = None
) -> ImageGenerator:
    """The generator in DIRECTORY: this project's artifact (manifest.json, autoencoder/,
    unet/), or any diffusers pipeline directory (model_index.json: Stable Diffusion 1.5,
    SDXL, FLUX…), loaded with DiffusionPipeline.from_pretrained."""
    directory = Path(directory)
    if (directory / "model_index.json").is_file():
        from diffusers import DiffusionPipeline

        pipeline = DiffusionPipeline.from_pretrained(directory, torch_dtype=torch.float32)
        pipeline.set_progress_bar_config(disable=True)
        sample = getattr(getattr(pipeline, "unet", None), "config", None)
        scale = getattr(pipeline, "vae_scale_factor", 8)
        native = sample.sample_size * scale if sample is not None else 512
        return ImageGenerator(pipeline, directory.name, native, upscales=False, lora_dir=lora_dir)
    return ImageGenerator(
        load_generator(directory), name, SIZE, upscales=True, lora_dir=lora_dir,
        exercise_prompt=EXERCISE_PROMPT,
    )  # fmt: skip
