"""How well the image generator draws the exercise it is asked for, and how fast.

    omnicoach eval imagegen [--images data/drawing-images] [--out reports/imagegen]

The real renders compared with are those the generator learnt from: the illustrations in
data/drawing-images (`make drawing-images`) for the shipped one.

Every exercise is asked for in the held-out wordings (data/drawing_dataset.HELD_OUT_TEMPLATES:
never trained on), one image per prompt and seed, by each sampler: DDIM with 50 steps (the
baseline) and DPM-Solver++ with fewer. For each sampler:

- recognised: the alignment model (models/alignment.py, LiT) picks the requested exercise
  among all of them for the image (zero-shot); the same for real test renders is the ceiling;
- CLIP score (with the alignment model in place of CLIP) against the prompt, and its ratio to
  the CLIP score of real test renders of the same exercise with the same prompts;
- FID on EfficientNet-Lite0 features (pooled, 1280-d; not Inception's, so not comparable with
  published FIDs) against the test renders, beside a real-vs-real baseline: as many training
  renders as generated images against the same test renders. With a few hundred images in
  1280 dimensions FID is biased upwards; it compares samplers and runs, measured alike;
- UNet evaluations and seconds per image;
- the same for the real test renders after a trip through the generator's autoencoder (encode,
  decode): what a generator on its latents can hope for.

Writes results.json, README.md and a grid of samples to the output directory.
"""

import json
import time
from pathlib import Path

import torch
from torch import nn

from omnicoach.data.drawing_dataset import HELD_OUT_TEMPLATES, load_pixels, prompts, to_model_range
from omnicoach.knowledge.base import load_entries
from omnicoach.models import image_generator as generator

BASELINE = ("ddim", 50)
FAST = (("dpm-solver++", 20), ("dpm-solver++", 10), ("dpm-solver++", 8))
BATCH = 32


class _PooledFeatures(nn.Module):
    """EfficientNet-Lite0's pooled features of uint8 images, as torchmetrics' FID wants them."""

    def __init__(self, image_encoder):
        super().__init__()
        self.image_encoder = image_encoder
        self.num_features = image_encoder.feature_dim

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        return self.image_encoder.pooled(pixels)


class FID:
    """FID of sets of uint8 images against one real set, on EfficientNet-Lite0 pooled features
    (torchmetrics' FID with that extractor). The real set is encoded once."""

    def __init__(self, image_encoder, real: torch.Tensor):
        from torchmetrics.image.fid import FrechetInceptionDistance

        features = _PooledFeatures(image_encoder)
        self.metric = FrechetInceptionDistance(feature=features, reset_real_features=False)
        for part in real.split(256):
            self.metric.update(part, real=True)

    def __call__(self, fake: torch.Tensor) -> float:
        self.metric.reset()  # the fake statistics only
        for part in fake.split(256):
            self.metric.update(part, real=False)
        return round(self.metric.compute().item(), 2)


def scheduler_for(name: str, config):
    from diffusers import DDIMScheduler, DPMSolverMultistepScheduler

    kind = {"ddim": DDIMScheduler, "dpm-solver++": DPMSolverMultistepScheduler}[name]
    return kind.from_config(config)


class ImageGenEvaluation:
    def __init__(
        self,
        pipeline,
        alignment,
        images: Path,
        exercises: list[str] | None = None,
        guidance: float = generator.DEFAULT_GUIDANCE,
    ):
        self.pipeline, self.alignment, self.images = pipeline, alignment, Path(images)
        self.guidance = guidance
        self.entries = {e["id"]: e for e in load_entries()}
        self.test, test_ids = load_pixels(self.images / "test", generator.SIZE)
        self.exercises = sorted(exercises or set(test_ids))
        keep = [i for i, e in enumerate(test_ids) if e in self.exercises]
        self.test, self.test_ids = self.test[keep], [test_ids[i] for i in keep]
        self.labels = [prompts(self.entries[e], HELD_OUT_TEMPLATES[:1])[0] for e in self.exercises]

    def run(self, samplers=(BASELINE, *FAST), seed: int = 0) -> dict:
        asked = [
            (exercise, prompt)
            for exercise in self.exercises
            for prompt in prompts(self.entries[exercise], HELD_OUT_TEMPLATES)
            if not _is_sanskrit_only(prompt, self.entries[exercise])
        ]
        real = self._real_like(asked)
        through = self.through_autoencoder(real)
        fid = FID(self.alignment.image_encoder, self.test)
        report = {
            "exercises": len(self.exercises),
            "images_per_sampler": len(asked),
            "guidance_scale": self.guidance,
            "seed": seed,
            "features": "EfficientNet-Lite0, pooled 1280-d (not Inception)",
            "real_renders": str(self.images),
            "real": {
                "recognised": self._recognised(real, asked),
                "clip_score": self._clip_score(real, asked),
                "fid_train_vs_test": fid(self._train_like(asked)),
            },
            "through_autoencoder": {
                "recognised": self._recognised(through, asked),
                "clip_score": self._clip_score(through, asked),
                "fid": fid(through),
            },
            "samplers": [],
        }
        samples = {}
        config = self.pipeline.scheduler.config
        for name, steps in samplers:
            self.pipeline.scheduler = scheduler_for(name, config)
            started = time.time()
            images = self.generate([p for _, p in asked], steps, seed)
            seconds = time.time() - started
            clip = self._clip_score(images, asked)
            report["samplers"].append(
                {
                    "sampler": name,
                    "steps": steps,
                    "unet_evaluations": 2 * steps,  # classifier-free guidance: two per step
                    "seconds_per_image": round(seconds / len(asked), 3),
                    "recognised": self._recognised(images, asked),
                    "clip_score": clip,
                    "clip_score_ratio": round(clip / report["real"]["clip_score"], 3),
                    "fid": fid(images),
                }
            )
            samples[f"{name} {steps}"] = images[: 3 * 8 : 3]  # one wording, 8 exercises
        self.pipeline.scheduler = scheduler_for("dpm-solver++", config)
        report["samples"] = samples
        return report

    @torch.inference_mode()
    def through_autoencoder(self, pixels: torch.Tensor) -> torch.Tensor:
        """uint8 PIXELS encoded and decoded by the generator's autoencoder: the best a
        generator on its latents can expect to draw."""
        vae = self.pipeline.vae
        out = []
        for part in pixels.split(BATCH):
            latents = vae.encode(to_model_range(part)).latent_dist.mode()
            decoded = vae.decode(latents).sample.clamp(-1, 1)
            out.append(((decoded + 1) * 127.5).round().byte())
        return torch.cat(out)

    def sweep_guidance(self, scales: list[float], steps: int = 20, seed: int = 1) -> list[dict]:
        """Recognised share per guidance scale, with the default sampler, asked in the
        training wording the chat uses ("a person doing …"), never a held-out one, and another
        seed than the report's: choosing the default here leaves the report's prompts unseen."""
        asked = [
            (e, generator.EXERCISE_PROMPT.format(name=self.entries[e]["name"]["en"]))
            for e in self.exercises
        ]
        results = []
        for scale in scales:
            images = self.generate([p for _, p in asked], steps, seed, guidance=scale)
            results.append(
                {
                    "guidance_scale": scale,
                    "recognised": self._recognised(images, asked),
                    "clip_score": self._clip_score(images, asked),
                }
            )
        return results

    @torch.inference_mode()
    def generate(
        self, texts: list[str], steps: int, seed: int, guidance: float | None = None
    ) -> torch.Tensor:
        """uint8 [N, 3, 64, 64] images, one per text, seeded per position (same noise for every
        sampler), with GUIDANCE or the evaluation's own."""
        out = []
        for start in range(0, len(texts), BATCH):
            batch = texts[start : start + BATCH]
            noise = [
                torch.Generator().manual_seed(seed * 100_003 + start + i) for i in range(len(batch))
            ]
            images = self.pipeline(
                batch,
                num_inference_steps=steps,
                guidance_scale=self.guidance if guidance is None else guidance,
                height=generator.SIZE,
                width=generator.SIZE,
                generator=noise,
                output_type="pt",
            ).images
            out.append((images.clamp(0, 1) * 255).round().byte())
        return torch.cat(out)

    def _recognised(self, pixels: torch.Tensor, asked: list[tuple[str, str]]) -> float:
        predicted = self.alignment.classify(pixels, self.labels)
        truth = torch.tensor([self.exercises.index(e) for e, _ in asked])
        return round((predicted == truth).float().mean().item(), 4)

    def _clip_score(self, pixels: torch.Tensor, asked: list[tuple[str, str]]) -> float:
        return round(self.alignment.clip_score(pixels, [p for _, p in asked]).mean().item(), 2)

    def _real_like(self, asked: list[tuple[str, str]]) -> torch.Tensor:
        """A test render of the asked exercise for each prompt."""
        return self.test[_one_per_prompt(self.test_ids, asked)]

    def _train_like(self, asked: list[tuple[str, str]]) -> torch.Tensor:
        """As many training renders as prompts, of the same exercises (real-vs-real FID)."""
        pixels, ids = load_pixels(self.images / "train", generator.SIZE)
        return pixels[_one_per_prompt(ids, asked)]


def _one_per_prompt(ids: list[str], asked: list[tuple[str, str]]) -> list[int]:
    """For each (exercise, prompt) asked, the row of an image of that exercise among IDS: its
    k-th image for its k-th prompt."""
    seen: dict[str, int] = {}
    picked = []
    for exercise, _ in asked:
        rows = [i for i, e in enumerate(ids) if e == exercise]
        picked.append(rows[seen.get(exercise, 0) % len(rows)])
        seen[exercise] = seen.get(exercise, 0) + 1
    return picked


def _is_sanskrit_only(prompt: str, entry: dict) -> bool:
    """Prompts by Sanskrit name are left out: the alignment model's labels are English."""
    return bool(entry.get("sanskrit")) and entry["sanskrit"] in prompt


def markdown_report(report: dict) -> str:
    real = report["real"]
    lines = [
        "# Image generator: held-out prompt wordings",
        "",
        f"{report['exercises']} exercises, {report['images_per_sampler']} prompts per sampler "
        f"(held-out wordings, English names), one image each, guidance {report['guidance_scale']}, "
        f"seed {report['seed']}. Regenerate: `omnicoach eval imagegen`. FID on "
        f"{report['features']}, against the test renders in `{report.get('real_renders')}`.",
        "",
        "| sampler | UNet evaluations | s per image | recognised | CLIP score (ratio to real) "
        "| FID |",
        "|---|---|---|---|---|---|",
    ]
    for s in report["samplers"]:
        lines.append(
            f"| {s['sampler']}, {s['steps']} steps | {s['unet_evaluations']} | "
            f"{s['seconds_per_image']:.3f} | {s['recognised']:.1%} | {s['clip_score']:.1f} "
            f"({s['clip_score_ratio']:.2f}) | {s['fid']:.1f} |"
        )
    through = report["through_autoencoder"]
    lines += [
        f"| real test renders through the autoencoder | | | {through['recognised']:.1%} | "
        f"{through['clip_score']:.1f} ({through['clip_score'] / real['clip_score']:.2f}) | "
        f"{through['fid']:.1f} |",
        f"| real test renders (ceiling) | | | {real['recognised']:.1%} | {real['clip_score']:.1f} "
        f"(1.00) | {real['fid_train_vs_test']:.1f} (train vs test) |",
        "",
        "Recognised: the alignment model (LiT heads over EfficientNet-Lite0 and MiniLM) picks "
        "the requested exercise among all of them.",
        "",
        "![samples](samples.png)",
        "",
        "Rows: " + ", ".join(report["samples"]) + "; columns: the first eight exercises.",
    ]
    return "\n".join(lines)


def write_report(report: dict, out: Path) -> None:
    from omnicoach.training.imagegen import save_grid

    out.mkdir(parents=True, exist_ok=True)
    rows = torch.cat([images.float() / 127.5 - 1 for images in report["samples"].values()])
    save_grid(rows, out / "samples.png", columns=len(next(iter(report["samples"].values()))))
    saved = {k: v for k, v in report.items() if k != "samples"}
    (out / "results.json").write_text(json.dumps(saved, indent=2))
    (out / "README.md").write_text(markdown_report(report))
