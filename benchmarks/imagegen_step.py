"""Which base generator can this CPU train: pixel space at 64×64, or latent diffusion on the
16×16×4 latents of a small autoencoder (64×64 images, downsampling factor 4)? One training
step (forward, loss, backward, optimiser) of a diffusers UNet2DConditionModel conditioned on
MiniLM token states (384-d, 32 tokens), for each, in the same run, fp32 and bf16 autocast.
For latent diffusion the autoencoder's own step is timed too (it is trained first, once;
the UNet then trains on latents computed once and cached).

    .venv/bin/python benchmarks/imagegen_step.py [--batch 32] [--repeats 3]

The last line is `latent vs pixel step time: X.XX× (bf16, batch N)`.
"""

import argparse
import statistics
import time

import torch
from diffusers import AutoencoderKL, UNet2DConditionModel

from omnicoach.threads import apply_threads

TEXT_TOKENS, TEXT_DIM = 32, 384  # MiniLM-L6's token states


def unet(sample_size: int, channels: int, widths: tuple[int, ...]) -> UNet2DConditionModel:
    levels = len(widths)
    return UNet2DConditionModel(
        sample_size=sample_size,
        in_channels=channels,
        out_channels=channels,
        block_out_channels=widths,
        layers_per_block=1,
        down_block_types=("DownBlock2D",) + ("CrossAttnDownBlock2D",) * (levels - 1),
        up_block_types=("CrossAttnUpBlock2D",) * (levels - 1) + ("UpBlock2D",),
        cross_attention_dim=TEXT_DIM,
        attention_head_dim=8,
        norm_num_groups=32,
    )


def autoencoder() -> AutoencoderKL:
    return AutoencoderKL(
        in_channels=3,
        out_channels=3,
        down_block_types=("DownEncoderBlock2D",) * 3,
        up_block_types=("UpDecoderBlock2D",) * 3,
        block_out_channels=(32, 64, 128),  # three levels: 64 → 16 (factor 4)
        layers_per_block=1,
        latent_channels=4,
        norm_num_groups=32,
        sample_size=64,
    )


def timed(step, repeats: int) -> float:
    step()  # warm-up
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        step()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def unet_step(model, shape, batch: int, bf16: bool):
    optimiser = torch.optim.AdamW(model.parameters(), lr=1e-4)
    text = torch.randn(batch, TEXT_TOKENS, TEXT_DIM)

    def step():
        noisy, noise = torch.randn(batch, *shape), torch.randn(batch, *shape)
        timesteps = torch.randint(0, 1000, (batch,))
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            predicted = model(noisy, timesteps, encoder_hidden_states=text).sample
        loss = torch.nn.functional.mse_loss(predicted.float(), noise)
        loss.backward()
        optimiser.step()
        optimiser.zero_grad(set_to_none=True)

    return step


def autoencoder_step(model, batch: int, bf16: bool):
    optimiser = torch.optim.AdamW(model.parameters(), lr=1e-4)

    def step():
        images = torch.rand(batch, 3, 64, 64) * 2 - 1
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            posterior = model.encode(images).latent_dist
            decoded = model.decode(posterior.sample()).sample
        loss = torch.nn.functional.l1_loss(decoded.float(), images) + 1e-6 * posterior.kl().mean()
        loss.backward()
        optimiser.step()
        optimiser.zero_grad(set_to_none=True)

    return step


def millions(model) -> float:
    return sum(p.numel() for p in model.parameters()) / 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    apply_threads(2)
    torch.manual_seed(0)
    pixel = unet(64, 3, (64, 128, 256))
    latent = unet(16, 4, (128, 256, 256))
    vae = autoencoder()
    print(f"pixel UNet {millions(pixel):.1f} M parameters, latent UNet {millions(latent):.1f} M, "
          f"autoencoder {millions(vae):.1f} M; batch {args.batch}")  # fmt: skip
    results = {}
    for bf16 in (False, True):
        precision = "bf16" if bf16 else "fp32"
        for name, step in (
            ("pixel 64×64×3", unet_step(pixel, (3, 64, 64), args.batch, bf16)),
            ("latent 16×16×4", unet_step(latent, (4, 16, 16), args.batch, bf16)),
            ("autoencoder 64×64", autoencoder_step(vae, args.batch, bf16)),
        ):
            results[name, precision] = timed(step, args.repeats)
            print(f"{name}, {precision}: {results[name, precision]:.2f} s per step")
    ratio = results["pixel 64×64×3", "bf16"] / results["latent 16×16×4", "bf16"]
    print(f"latent vs pixel step time: {1 / ratio:.2f}× (bf16, batch {args.batch})")


if __name__ == "__main__":
    main()
