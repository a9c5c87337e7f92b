"""Training the image generator from scratch, in two stages (models/image_generator.py).

    omnicoach train imagegen --stage autoencoder --out var/train/imagegen-ae --max-steps 2500
    omnicoach train imagegen --stage unet --autoencoder var/train/imagegen-ae/autoencoder \
        --out var/train/imagegen --max-minutes 100
    omnicoach train imagegen --stage decoder --autoencoder var/train/imagegen-ae/autoencoder \
        --out var/train/imagegen-decoder --max-steps 800

The images are the rendered exercise figures in the "illustration" style (data/
exercise_images.py: one neutral person, centred on a plain background; `make drawing-images`).
Stage "autoencoder" trains the small AutoencoderKL to reconstruct them at 64×64 (L1, a very
light KL term as in Stable Diffusion's), then sets its latent scaling factor so that the
latents have unit variance. Stage "decoder" goes on training its decoder alone: the latents
do not change, so it can run after the UNet's and sharpen what the UNet draws. Stage "unet"
encodes every training image once and trains the UNet to predict v (training_scheduler) for
noisy latents, conditioned on MiniLM's token states of a prompt naming the exercise
(data/drawing_dataset.py: templates, English or Sanskrit name), the prompt dropped one time
in ten so that classifier-free guidance works; the loss is weighted by min-SNR-5 (Hang et
al. 2023), which converges several times faster than the plain loss. The UNet's weights are
averaged as they train (EMA, decay 0.999, as DDPM and Stable Diffusion do); validation,
samples and the shipped UNet use the average.

Training runs for hours on this CPU, so it is built to stop and go on: a checkpoint (weights
in fp16, Adam's moments in bf16) replaces the previous one every `checkpoint_every` steps and
is resumed; `--max-minutes` ends a run cleanly, checkpoint written; `--init DIR` goes on from a
shipped artifact (its weights and step count; the optimiser starts afresh), so a later session
or another machine continues the run that `artifacts/imagegen` holds. Validation loss on the
held-out test renders, sample images every `sample_every` steps (samples/step-N.png, prompts
in held-out wordings), loss curve in CSV and PNG, tqdm progress.
"""

import functools
import hashlib
import json
import math
import shutil
import time
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
import torch.nn.functional as F

from omnicoach.config import REPO
from omnicoach.data.drawing_dataset import (
    HELD_OUT_TEMPLATES,
    TRAIN_TEMPLATES,
    load_pixels,
    prompts,
    to_model_range,
)
from omnicoach.errors import InvalidRequestError
from omnicoach.knowledge.base import load_entries
from omnicoach.models import image_generator as generator
from omnicoach.training.checkpoints import has_checkpoint, replace_directory, staging_for
from omnicoach.training.sft import load_trainable, save_trainable, write_curve
from omnicoach.training.vlm import bf16_is_fast

STAGES = ("autoencoder", "unet", "decoder")
CHECKPOINT = "checkpoint"
PROMPT_DROPOUT = 0.1  # share of steps' prompts replaced by "": the unconditional model
MIN_SNR_GAMMA = 5.0
VALIDATION_IMAGES = 256
EMA_FILE = "ema.pt"
LATENT_CACHE = "latents.pt"  # the training images encoded (var/, never shipped)
# The exercises drawn in the sample grids: yoga and gym, standing, seated, lying, inverted.
SAMPLE_EXERCISES = [
    "warrior-ii",
    "tree-pose",
    "downward-facing-dog",
    "boat-pose",
    "barbell-back-squat",
    "push-up",
    "barbell-bench-press",
    "cobra-pose",
]


@dataclass
class ImageGenConfig:
    stage: str
    out: Path
    images: Path = REPO / "data" / "drawing-images"
    autoencoder: Path | None = None  # stages unet, decoder: the trained autoencoder's directory
    init: Path | None = None  # go on from this shipped artifact's model of the stage
    exercises: list[str] | None = None  # only these (tests); default every rendered one
    batch_size: int = 32
    learning_rate: float | None = None  # autoencoder and decoder 5e-4, UNet 2e-4
    warmup_steps: int = 100
    max_steps: int = 1000
    max_minutes: float | None = None
    eval_every: int = 250
    sample_every: int = 500
    checkpoint_every: int = 100
    seed: int = 0
    resume: bool = True
    precision: str | None = None  # "bf16" or "no"; default bf16 where the CPU is fast at it
    ema_decay: float = 0.999  # stage unet: sample, validate and ship averaged weights; 0: off


def train_imagegen(config: ImageGenConfig, on_step: Callable | None = None, log=print) -> dict:
    """Train one stage; returns a summary (steps, validation loss, seconds, output directory)."""
    from accelerate import Accelerator
    from accelerate.utils import set_seed
    from tqdm.auto import tqdm
    from transformers import get_constant_schedule_with_warmup

    if config.stage not in STAGES:
        raise InvalidRequestError(f"stage must be one of {', '.join(STAGES)}, got {config.stage}")
    precision = config.precision or ("bf16" if bf16_is_fast() else "no")
    accelerator = Accelerator(cpu=not torch.cuda.is_available())
    set_seed(config.seed)
    out = Path(config.out)
    out.mkdir(parents=True, exist_ok=True)
    images = _Images(config)
    stage = (_UNetStage if config.stage == "unet" else _AutoencoderStage)(config, images)
    stage.bf16 = precision == "bf16"
    model = stage.model
    log(
        f"{config.stage}: {sum(p.numel() for p in model.parameters()):,} parameters; "
        f"{len(images.train)} training and {len(images.test)} held-out images of "
        f"{len(set(images.train_ids))} exercises; precision {precision}"
    )
    learning_rate = config.learning_rate or (2e-4 if config.stage == "unet" else 5e-4)
    optimizer = torch.optim.AdamW(model.parameters(), lr=learning_rate, weight_decay=0.01)
    schedule = get_constant_schedule_with_warmup(optimizer, config.warmup_steps)
    model, optimizer, schedule = accelerator.prepare(model, optimizer, schedule)

    state = {"step": 0, "best": math.inf, "history": [], "seconds": 0.0}
    checkpoint = out / CHECKPOINT
    if config.resume and has_checkpoint(checkpoint):
        state = load_trainable(accelerator, model, optimizer, schedule, checkpoint)
        stage.load_extra(checkpoint)
        log(f"resumed from step {state['step']}")
    elif config.init is not None:
        state |= stage.init_from(Path(config.init))
        log(f"going on from {config.init} at step {state['step']} (optimiser starts afresh)")

    total = config.max_steps
    deadline = math.inf if config.max_minutes is None else time.time() + 60 * config.max_minutes
    bar = tqdm(total=total, initial=min(state["step"], total), desc=f"imagegen {config.stage}")
    started, seconds_before = time.time(), state["seconds"]
    while state["step"] < total:
        model.train()
        batch = torch.Generator().manual_seed(config.seed * 1_000_003 + state["step"])
        loss = stage.loss(batch)
        accelerator.backward(loss)
        accelerator.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        schedule.step()
        optimizer.zero_grad()
        stage.after_step()
        state["step"] += 1
        state["seconds"] = seconds_before + time.time() - started
        step = state["step"]
        bar.update(1)
        bar.set_postfix(loss=f"{loss.item():.4f}")
        record = {"step": step, "train_loss": loss.item(), "validation_loss": None}
        out_of_time = time.time() >= deadline
        last = step == total or out_of_time
        if step % config.eval_every == 0 or last:
            record["validation_loss"] = stage.validate()
            log(f"step {step}: validation loss {record['validation_loss']:.4f}")
            state["best"] = min(state["best"], record["validation_loss"])
        if step % config.sample_every == 0 or last:
            (out / "samples").mkdir(exist_ok=True)
            stage.draw_samples(out / "samples" / f"step-{step:06d}.png")
        state["history"].append(record)
        if on_step:
            on_step(record, total)
        if step % config.checkpoint_every == 0 or last:
            save_trainable(
                accelerator, model, optimizer, schedule, checkpoint, state, stage.write_extra
            )
        if out_of_time:
            log(f"stopped after {config.max_minutes} minutes at step {step}; resume to go on")
            break
    bar.close()
    stage.save(out)
    write_curve(out, state["history"], ylabel=stage.loss_name)
    summary = {
        "stage": config.stage,
        "steps": state["step"],
        "last_validation_loss": next(
            (h["validation_loss"] for h in reversed(state["history"]) if h["validation_loss"]),
            None,
        ),
        "training_seconds": round(state["seconds"], 1),
        "out": str(out),
        "precision": precision,
        "finished": state["step"] >= total,
        "config": {k: str(v) if isinstance(v, Path) else v for k, v in asdict(config).items()},
    }
    (out / "summary.json").write_text(json.dumps(summary, indent=2))
    return summary


def ship(out: Path, artifact: Path, command: str, started: float, **facts) -> dict:
    """The UNet stage's output OUT (and the autoencoder it trained on) as the artifact
    ARTIFACT: both models in fp16, the scheduler, loss curve, the last sample grid, and a
    manifest with both stages' steps, times and losses."""
    from diffusers import AutoencoderKL, UNet2DConditionModel

    from omnicoach.artifacts import write_manifest, writing

    out = Path(out)
    summary = json.loads((out / "summary.json").read_text())
    config = summary["config"]
    if config["autoencoder"]:
        source = Path(config["autoencoder"])
        autoencoder_training = _autoencoder_facts(source)
    else:
        source = Path(config["init"]) / "autoencoder"
        autoencoder_training = json.loads((Path(config["init"]) / "manifest.json").read_text())[
            "autoencoder_training"
        ]
    with writing(artifact) as staging:
        AutoencoderKL.from_pretrained(source).half().save_pretrained(staging / "autoencoder")
        UNet2DConditionModel.from_pretrained(out / "unet").half().save_pretrained(staging / "unet")
        shutil.copytree(out / "scheduler", staging / "scheduler")
        for name in ("loss.csv", "loss.png"):
            shutil.copy(out / name, staging / name)
        samples = sorted((out / "samples").glob("step-*.png"))
        if samples:
            shutil.copy(samples[-1], staging / "samples.png")
        return write_manifest(
            staging,
            name=Path(artifact).name,
            command=command,
            seed=config["seed"],
            started=started,
            **_summary_facts(summary),
            autoencoder_training=autoencoder_training,
            hyperparameters={
                k: config[k] for k in ("batch_size", "learning_rate", "warmup_steps", "precision")
            },
            **facts,
        )


def _autoencoder_facts(trained: Path) -> dict:
    """How the autoencoder in TRAINED was trained; for a decoder stage, its encoder's too."""
    summary = json.loads((trained.parent / "summary.json").read_text())
    facts = _summary_facts(summary)
    if summary["stage"] == "decoder":
        facts["encoder_training"] = _autoencoder_facts(Path(summary["config"]["autoencoder"]))
    return facts


def _summary_facts(summary: dict) -> dict:
    return {
        k: summary[k]
        for k in ("stage", "steps", "training_seconds", "last_validation_loss", "precision")
    } | {"command_config": summary["config"]}


class _Images:
    """The rendered train and test splits at 64×64, optionally only some exercises."""

    def __init__(self, config: ImageGenConfig):
        self.train, self.train_ids = self._split(config, "train")
        self.test, self.test_ids = self._split(config, "test")
        self.entries = {e["id"]: e for e in load_entries()}

    @staticmethod
    def _split(config, split: str):
        directory = Path(config.images) / split
        if not (directory / "metadata.jsonl").is_file():
            raise InvalidRequestError(
                f"no rendered images in {directory}: render them with `python -m "
                f"omnicoach.data.exercise_images --out {config.images} --split {split}` (README)"
            )
        pixels, ids = load_pixels(directory, generator.SIZE)
        if config.exercises:
            keep = [i for i, exercise in enumerate(ids) if exercise in config.exercises]
            pixels, ids = pixels[keep], [ids[i] for i in keep]
        return pixels, ids


class _Stage:
    """What a stage adds to the shared loop: nothing, unless it keeps averaged weights."""

    def after_step(self) -> None:
        pass

    def write_extra(self, checkpoint: Path) -> None:
        pass

    def load_extra(self, checkpoint: Path) -> None:
        pass


class _AutoencoderStage(_Stage):
    loss_name = "L1 reconstruction (pixels in [-1, 1])"

    def __init__(self, config: ImageGenConfig, images: _Images):
        self.config, self.images = config, images
        self.model = generator.new_autoencoder()
        self.bf16 = False
        if config.stage == "decoder":
            self._freeze_encoder(config.autoencoder)

    def _freeze_encoder(self, trained: Path | None) -> None:
        """Stage "decoder": go on training only the decoder of the autoencoder TRAINED. The
        encoder, and so every latent, stays as it is, so a UNet trained on those latents
        stays valid and draws sharper pictures through the better decoder (as Stable
        Diffusion's fine-tuned VAE decoders were made)."""
        if trained is None:
            raise InvalidRequestError(
                "stage decoder needs the trained autoencoder: --autoencoder DIR (from stage "
                "autoencoder)"
            )
        self._load_weights(trained)
        self.model.encoder.requires_grad_(False)
        self.model.quant_conv.requires_grad_(False)

    def _load_weights(self, directory: Path) -> None:
        from diffusers import AutoencoderKL

        trained = AutoencoderKL.from_pretrained(directory, torch_dtype=torch.float32)
        self.model.load_state_dict(trained.state_dict())

    def loss(self, batch: torch.Generator) -> torch.Tensor:
        chosen = torch.randint(len(self.images.train), (self.config.batch_size,), generator=batch)
        pixels = to_model_range(self.images.train[chosen])
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=self.bf16):
            posterior = self.model.encode(pixels).latent_dist
            decoded = self.model.decode(posterior.sample(batch)).sample
        return F.l1_loss(decoded.float(), pixels) + 1e-6 * posterior.kl().mean()

    @torch.no_grad()
    def validate(self) -> float:
        self.model.eval()
        pixels = to_model_range(self.images.test[:VALIDATION_IMAGES])
        decoded = self.model(pixels, sample_posterior=False).sample
        return F.l1_loss(decoded, pixels).item()

    @torch.no_grad()
    def draw_samples(self, path: Path) -> None:
        """Held-out images over their reconstructions."""
        self.model.eval()
        pixels = to_model_range(self.images.test[:8])
        decoded = self.model(pixels, sample_posterior=False).sample
        save_grid(torch.cat([pixels, decoded]), path, columns=8)

    def init_from(self, artifact: Path) -> dict:
        """The shipped autoencoder's weights, steps and time (to adapt it to new images)."""
        self._load_weights(artifact / "autoencoder")
        trained = json.loads((artifact / "manifest.json").read_text())["autoencoder_training"]
        return {"step": trained["steps"], "seconds": trained["training_seconds"], "history": []}

    @torch.no_grad()
    def save(self, out: Path) -> None:
        """The autoencoder with its latent scaling factor (1 / std of the training latents)."""
        self.model.eval()
        sample = to_model_range(self.images.train[:1024])
        latents = torch.cat([self.model.encode(p).latent_dist.mode() for p in sample.split(256)])
        self.model.register_to_config(scaling_factor=float(1.0 / latents.std()))
        _replace(out / "autoencoder", lambda d: self.model.save_pretrained(d))


class _UNetStage(_Stage):
    loss_name = "v-prediction MSE, min-SNR-5 weighted"

    def __init__(self, config: ImageGenConfig, images: _Images):
        from diffusers import AutoencoderKL

        if config.autoencoder is None and config.init is None:
            raise InvalidRequestError(
                "stage unet needs the trained autoencoder: --autoencoder DIR (from stage "
                "autoencoder) or --init DIR (a shipped artifact)"
            )
        source = Path(config.autoencoder or Path(config.init) / "autoencoder")
        self.config, self.images = config, images
        self.autoencoder = AutoencoderKL.from_pretrained(source, torch_dtype=torch.float32).eval()
        self.autoencoder.requires_grad_(False)
        self.model = generator.new_unet()
        self.ema = None  # an exponential moving average of the weights, made at the first step
        self.scheduler = generator.training_scheduler()
        self.bf16 = False
        self.pipeline = generator.assemble(
            self.autoencoder, self.model, generator.sampling_scheduler(self.scheduler.config)
        )
        self.prompt_states, self.prompts_of = self._prompt_states(TRAIN_TEMPLATES)
        self.empty = generator.encode_prompts(self.pipeline, [""])[0]

    @functools.cached_property
    def train_latents(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Every training image encoded once, when the first step needs them (minutes for
        tens of thousands of images; a run that only ships never does), and kept in the run
        folder, so that a resumed run does not encode them again. The cache is keyed by the
        encoder's weights and the images: a new autoencoder or new renders encode afresh."""
        cache = Path(self.config.out) / LATENT_CACHE
        key = self._latent_key(self.images.train)
        if cache.is_file():
            cached = torch.load(cache, weights_only=True)
            if cached["key"] == key:
                return cached["mean"], cached["std"]
        mean, std = self._encode(self.images.train)
        cache.parent.mkdir(parents=True, exist_ok=True)
        torch.save({"key": key, "mean": mean, "std": std}, cache.with_suffix(".tmp"))
        cache.with_suffix(".tmp").replace(cache)  # whole or not at all
        return mean, std

    def _latent_key(self, pixels: torch.Tensor) -> str:
        """sha256 of what the latents depend on: the encoder's weights and the pixels."""
        digest = hashlib.sha256()
        for name, tensor in self.autoencoder.state_dict().items():
            if name.startswith(("encoder.", "quant_conv.")):
                digest.update(name.encode())
                digest.update(tensor.detach().to(torch.float32).contiguous().numpy().tobytes())
        digest.update(str(tuple(pixels.shape)).encode())
        digest.update(pixels.contiguous().numpy().tobytes())
        return digest.hexdigest()

    @functools.cached_property
    def test_latents(self) -> torch.Tensor:
        return self._encode(self.images.test[:VALIDATION_IMAGES])[0]

    @torch.no_grad()
    def _encode(self, pixels: torch.Tensor):
        """(mean, std) of the autoencoder's latent distribution per image, scaled."""
        scale = self.autoencoder.config.scaling_factor
        means, stds = [], []
        for chunk in pixels.split(256):
            posterior = self.autoencoder.encode(to_model_range(chunk)).latent_dist
            means.append(posterior.mean * scale)
            stds.append(posterior.std * scale)
        return torch.cat(means), torch.cat(stds)

    def _prompt_states(self, templates: list[str]):
        """MiniLM token states of every prompt of every exercise, and each exercise's rows."""
        texts, rows = [], {}
        for exercise in sorted(set(self.images.train_ids)):
            made = prompts(self.images.entries[exercise], templates)
            rows[exercise] = list(range(len(texts), len(texts) + len(made)))
            texts += made
        states = torch.cat([generator.encode_prompts(self.pipeline, c) for c in _chunks(texts)])
        return states, rows

    def loss(self, batch: torch.Generator) -> torch.Tensor:
        mean, std = self.train_latents
        chosen = torch.randint(len(mean), (self.config.batch_size,), generator=batch)
        states = torch.stack([self._prompt_of(int(i), batch) for i in chosen])
        latents = mean[chosen], std[chosen]
        return diffusion_loss(self.model, self.scheduler, latents, states, batch, self.bf16)

    def _prompt_of(self, index: int, batch: torch.Generator) -> torch.Tensor:
        if torch.rand((), generator=batch) < PROMPT_DROPOUT:
            return self.empty
        rows = self.prompts_of[self.images.train_ids[index]]
        return self.prompt_states[rows[int(torch.randint(len(rows), (), generator=batch))]]

    def after_step(self) -> None:
        """Average the weights: diffusion samples from an average of the last ~1/(1-decay)
        steps' weights are much cleaner than from the last step's, as in DDPM and SD."""
        from diffusers.training_utils import EMAModel

        if not self.config.ema_decay:
            return
        if self.ema is None:
            self.ema = EMAModel(self.model.parameters(), decay=self.config.ema_decay)
        self.ema.step(self.model.parameters())

    @contextmanager
    def averaged(self):
        """The model with its averaged weights in place (its own weights restored after)."""
        if self.ema is None:
            yield
            return
        self.ema.store(self.model.parameters())
        self.ema.copy_to(self.model.parameters())
        try:
            yield
        finally:
            self.ema.restore(self.model.parameters())

    def write_extra(self, checkpoint: Path) -> None:
        if self.ema is not None:
            state = self.ema.state_dict()
            state["shadow_params"] = [p.half() for p in state["shadow_params"]]
            torch.save(state, checkpoint / EMA_FILE)

    def load_extra(self, checkpoint: Path) -> None:
        from diffusers.training_utils import EMAModel

        if self.config.ema_decay and (checkpoint / EMA_FILE).is_file():
            state = torch.load(checkpoint / EMA_FILE, weights_only=True)
            state["shadow_params"] = [p.float() for p in state["shadow_params"]]
            self.ema = EMAModel(self.model.parameters(), decay=self.config.ema_decay)
            self.ema.load_state_dict(state)

    @torch.no_grad()
    def validate(self) -> float:
        with self.averaged():
            return self._validate()

    def _validate(self) -> float:
        """The training loss on held-out renders, with a fixed draw of noise and steps and the
        prompts in the first training wording (comparable across steps and runs)."""
        self.model.eval()
        fixed = torch.Generator().manual_seed(1234)
        latents = self.test_latents
        noise = torch.randn(latents.shape, generator=fixed)
        timesteps = torch.randint(0, 1000, (len(latents),), generator=fixed)
        ids = self.images.test_ids[: len(latents)]
        states = torch.stack(
            [self.prompt_states[self.prompts_of[e][0]] if e in self.prompts_of else self.empty
             for e in ids]
        )  # fmt: skip
        losses = []
        for part in torch.arange(len(latents)).split(64):
            noisy = self.scheduler.add_noise(latents[part], noise[part], timesteps[part])
            target = self.scheduler.get_velocity(latents[part], noise[part], timesteps[part])
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=self.bf16):
                predicted = self.model(noisy, timesteps[part], encoder_hidden_states=states[part])
            weighted = _weighted(self.scheduler, predicted.sample.float(), target, timesteps[part])
            losses.append(weighted)
        return torch.cat(losses).mean().item()

    @torch.no_grad()
    def draw_samples(self, path: Path) -> None:
        with self.averaged():
            self._draw_samples(path)

    def _draw_samples(self, path: Path) -> None:
        """One image per sample exercise, asked for in a held-out wording, seed 0."""
        self.model.eval()
        exercises = [e for e in SAMPLE_EXERCISES if e in self.images.entries]
        asked = [prompts(self.images.entries[e], HELD_OUT_TEMPLATES[:1])[0] for e in exercises]
        images = self.pipeline(
            asked,
            num_inference_steps=20,
            guidance_scale=4.0,
            height=generator.SIZE,
            width=generator.SIZE,
            generator=torch.Generator().manual_seed(0),
            output_type="pt",
        ).images
        save_grid(images * 2 - 1, path, columns=len(asked))

    def init_from(self, artifact: Path) -> dict:
        from diffusers import UNet2DConditionModel

        shipped = UNet2DConditionModel.from_pretrained(artifact / "unet", torch_dtype=torch.float32)
        self.model.load_state_dict(shipped.state_dict())
        manifest = json.loads((artifact / "manifest.json").read_text())
        history = _read_history(artifact / "loss.csv")
        return {
            "step": manifest["steps"],
            "seconds": manifest["training_seconds"],
            "history": history,
        }

    def save(self, out: Path) -> None:
        self.model.eval()
        with self.averaged():
            _replace(out / "unet", lambda d: self.model.save_pretrained(d))
        _replace(out / "scheduler", lambda d: self.scheduler.save_pretrained(d))


def diffusion_loss(unet, scheduler, latents, states, batch: torch.Generator, bf16: bool):
    """The training loss of UNET on one batch: LATENTS (mean, std) of the images' latent
    distributions (scaled), STATES their prompts' token states; the latent sample, noise and
    steps drawn from BATCH. The target is the scheduler's (v or the noise), the loss weighted
    by min-SNR."""
    mean, std = latents
    latents = mean + std * torch.randn(mean.shape, generator=batch)
    noise = torch.randn(latents.shape, generator=batch)
    steps = scheduler.config.num_train_timesteps
    timesteps = torch.randint(0, steps, (len(latents),), generator=batch)
    noisy = scheduler.add_noise(latents, noise, timesteps)
    if scheduler.config.prediction_type == "v_prediction":
        target = scheduler.get_velocity(latents, noise, timesteps)
    else:
        target = noise
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
        predicted = unet(noisy, timesteps, encoder_hidden_states=states).sample
    return _weighted(scheduler, predicted.float(), target, timesteps).mean()


def _weighted(scheduler, predicted, target, timesteps) -> torch.Tensor:
    """Per image: the squared error, weighted by min-SNR-γ (Hang et al. 2023): min(SNR, γ) /
    (SNR + 1) for v-prediction, min(SNR, γ) / SNR for ε-prediction."""
    alphas = scheduler.alphas_cumprod[timesteps]
    snr = alphas / (1 - alphas)
    clipped = torch.clamp(snr, max=MIN_SNR_GAMMA)
    v = scheduler.config.prediction_type == "v_prediction"
    weight = clipped / (snr + 1) if v else clipped / snr.clamp(min=1e-8)
    return F.mse_loss(predicted, target, reduction="none").mean((1, 2, 3)) * weight


def _chunks(texts: list[str], size: int = 64):
    return [texts[i : i + size] for i in range(0, len(texts), size)]


def _replace(directory: Path, write: Callable[[Path], None]) -> None:
    """Write DIRECTORY beside itself, then swap it in: never half-written."""
    staging = staging_for(directory)
    write(staging)
    replace_directory(directory, staging)


def _read_history(path: Path) -> list[dict]:
    import csv

    if not path.is_file():
        return []
    with open(path) as f:
        return [
            {k: (float(v) if v else None) if k != "step" else int(v) for k, v in row.items()}
            for row in csv.DictReader(f)
        ]


def save_grid(images: torch.Tensor, path: Path, columns: int) -> None:
    """IMAGES ([N, 3, H, W] in [-1, 1]) as one PNG, COLUMNS a row."""
    from PIL import Image

    n, _, h, w = images.shape
    rows = math.ceil(n / columns)
    grid = torch.ones(3, rows * h, columns * w)
    for i, image in enumerate(images.clamp(-1, 1)):
        r, c = divmod(i, columns)
        grid[:, r * h : (r + 1) * h, c * w : (c + 1) * w] = (image + 1) / 2
    array = (grid.permute(1, 2, 0) * 255).round().byte().numpy()
    Image.fromarray(array).resize((columns * w * 2, rows * h * 2), Image.Resampling.NEAREST).save(
        path
    )
