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

from pathlib import Path

import torch

from omnicoach.errors import ModelFileError

SIZE = 64  # pixels a side
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
    import json

    return json.loads((Path(directory) / "scheduler" / "scheduler_config.json").read_text())
