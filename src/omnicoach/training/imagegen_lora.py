"""A LoRA for the image generator, from a user's pictures (POST /train → the
"train_image_lora" job).

The examples come from a checked ZIP (images/zip_dataset.py): pictures and captions that
carry the trigger word. Each picture is padded to a square and scaled to the generator's own
size, encoded once by its autoencoder; each caption once by its text encoder. A LoRA (peft,
on the UNet's attention projections — diffusers' own text-to-image LoRA recipe) is trained
with the base model's loss (training/imagegen.diffusion_loss), and saved in diffusers' LoRA
format with `lora.json` (name, trigger word, base model, steps), so the server's generator
loads it with `load_lora_weights` whenever a prompt says the trigger word.
"""

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch

from omnicoach.data.drawing_dataset import to_model_range
from omnicoach.images.zip_dataset import TrainingExample
from omnicoach.models import image_generator as generator
from omnicoach.models.image_encoder import square, uint8_pixels
from omnicoach.training.imagegen import diffusion_loss, save_grid
from omnicoach.training.vlm import bf16_is_fast

LORA_CONFIG = "lora.json"
TARGETS = ["to_q", "to_k", "to_v", "to_out.0"]


@dataclass
class LoraTraining:
    name: str
    trigger: str
    out: Path
    steps: int = 300
    rank: int = 8
    learning_rate: float = 1e-4
    batch_size: int = 4
    sample_every: int = 100
    seed: int = 0


def train_lora(
    drawing: "generator.ImageGenerator",
    examples: list[TrainingExample],
    config: LoraTraining,
    on_step: Callable[[int, float], None] | None = None,
    on_sample: Callable[[int, Path], None] | None = None,
    log=print,
) -> dict:
    """Train a LoRA on DRAWING's UNet (which gets it added: give a copy that serves nobody);
    writes it to CONFIG.out and returns lora.json's content."""
    from diffusers import DDPMScheduler, StableDiffusionPipeline
    from diffusers.utils import convert_state_dict_to_diffusers
    from peft import LoraConfig
    from peft.utils import get_peft_model_state_dict

    torch.manual_seed(config.seed)
    started = time.time()
    pipeline = drawing.pipeline
    unet, bf16 = pipeline.unet, bf16_is_fast()
    side = drawing.native_size
    pixels = torch.stack([uint8_pixels(square(example.image, side)) for example in examples])
    latents = _latents(pipeline.vae, pixels)
    states = generator.encode_prompts(pipeline, [example.caption for example in examples])
    scheduler = DDPMScheduler.from_config(pipeline.scheduler.config)
    unet.requires_grad_(False)
    unet.add_adapter(
        LoraConfig(
            r=config.rank,
            lora_alpha=config.rank,
            init_lora_weights="gaussian",
            target_modules=TARGETS,
        )
    )
    trainable = [p for p in unet.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(trainable, lr=config.learning_rate)
    log(
        f"LoRA {config.name!r} (trigger {config.trigger!r}): {len(examples)} pictures at "
        f"{side}×{side}, {sum(p.numel() for p in trainable):,} trainable parameters"
    )
    out = Path(config.out)
    (out / "samples").mkdir(parents=True, exist_ok=True)
    sample_prompt = examples[0].caption
    _sample(pipeline, sample_prompt, out / "samples" / "step-000000.png", on_sample, 0)
    for step in range(1, config.steps + 1):
        unet.train()
        batch = torch.Generator().manual_seed(config.seed * 1_000_003 + step)
        chosen = torch.randint(len(examples), (config.batch_size,), generator=batch)
        mean, std = latents
        loss = diffusion_loss(
            unet, scheduler, (mean[chosen], std[chosen]), states[chosen], batch, bf16
        )
        loss.backward()
        torch.nn.utils.clip_grad_norm_(trainable, 1.0)
        optimizer.step()
        optimizer.zero_grad()
        if on_step:
            on_step(step, loss.item())
        if step % config.sample_every == 0 or step == config.steps:
            path = out / "samples" / f"step-{step:06d}.png"
            _sample(pipeline, sample_prompt, path, on_sample, step)
    layers = convert_state_dict_to_diffusers(get_peft_model_state_dict(unet))
    StableDiffusionPipeline.save_lora_weights(out, unet_lora_layers=layers)
    described = {
        "name": config.name,
        "trigger": config.trigger,
        "base": drawing.name,
        "steps": config.steps,
        "rank": config.rank,
        "pictures": len(examples),
        "seconds": round(time.time() - started, 1),
    }
    (out / LORA_CONFIG).write_text(json.dumps(described, indent=2))
    return described


@torch.no_grad()
def _latents(vae, pixels: torch.Tensor):
    scale = vae.config.scaling_factor
    posterior = vae.encode(to_model_range(pixels)).latent_dist
    return posterior.mean * scale, posterior.std * scale


@torch.no_grad()
def _sample(pipeline, prompt: str, path: Path, on_sample, step: int) -> None:
    """The trigger's first caption drawn with seed 0: the samples show the LoRA taking hold."""
    pipeline.unet.eval()
    images = pipeline(
        [prompt],
        num_inference_steps=20,
        generator=torch.Generator().manual_seed(0),
        output_type="pt",
    ).images
    save_grid(images * 2 - 1, path, columns=1)
    if on_sample:
        on_sample(step, path)
