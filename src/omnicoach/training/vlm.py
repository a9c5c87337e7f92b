"""Teaching the chat model to see, in LLaVA's two stages.

    omnicoach train vlm --stage 1 --train data/exercise-images/train/captions.json --out runs/vlm1
    omnicoach train vlm --stage 2 --train data/exercise-images/train/instruct.json \
        --projector runs/vlm1 --out runs/vlm2 --ship artifacts/vlm

Stage 1 (feature alignment) trains only the projector, on captions, with the LLM frozen.
LLaVA trains it through the LLM's caption loss; on this CPU that learned too slowly (1 of 396
held-out pictures named after 150 steps of 32, ten minutes; README, Seeing), so here the image
tokens are regressed straight onto the word embeddings of the caption's first words (captions
start with the exercise's name): the projector's output becomes words the LLM already reads,
with no LLM forward at all. Stage 2 (visual instruction tuning) trains the projector and a
LoRA adapter on the LLM together, on conversations, with the LLM's own loss. The image
encoder is frozen in both; its features are computed once per dataset and cached
(models/image_encoder.py). On a CPU with bf16 support training runs under bf16 autocast.

Data: LLaVA JSON (data/vlm_dataset.py), ours or LLaVA-Instruct-150K's with `--images`.
As in training/sft.py: loss on the assistant turns only, validation loss, early stopping,
a checkpoint (trainable weights in fp16) replaced every `checkpoint_every` steps and resumed,
loss curve in CSV and PNG, tqdm progress. The output directory holds `projector.safetensors`,
`vision.json` (what the projector expects and feeds) and, after stage 2, `adapter/`.
"""

import json
import math
import random
import shutil
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from omnicoach.data.vlm_dataset import load_llava
from omnicoach.errors import InvalidRequestError
from omnicoach.models.image_encoder import BUNDLED_ENCODER, ImageEncoder, feature_cache
from omnicoach.models.vision_language import (
    IGNORE,
    PROJECTOR,
    VISION_CONFIG,
    Projector,
    VisionLanguageModel,
    read_as_words,
    read_projector,
    tokenize_with_image,
)
from omnicoach.training.checkpoints import has_checkpoint, load_training_state
from omnicoach.training.sft import (
    collate as text_collate,
)
from omnicoach.training.sft import (
    save_adapter,
    save_trainable,
    validation_loss,
    write_curve,
)

CHECKPOINT = "checkpoint"


@dataclass
class VLMConfig:
    stage: int
    train: Path  # LLaVA JSON
    out: Path
    chat_model: str = "smollm2-135m-yoga"  # a bundled chat model's name, or a local directory
    images: Path | None = None  # the image folder (default: the JSON's folder)
    validation: Path | None = None  # default: a seeded tenth of train
    projector: Path | None = None  # stage 2: the stage-1 output to start from
    encoder: str = BUNDLED_ENCODER
    grid: int = 1  # pooled: the best linear probe of the grids measured (README, Seeing)
    tokens_per_feature: int = 10  # image tokens per feature token (stage 1; stage 2 inherits)
    epochs: int = 1
    batch_size: int = 8
    learning_rate: float | None = None  # default: 1e-3 in stage 1, 2e-4 in stage 2 (LLaVA's)
    precision: str | None = None  # "bf16" or "no"; default: bf16 where the CPU/GPU has it
    lora_rank: int = 16
    lora_alpha: int = 32
    max_length: int = 384
    limit: int | None = None  # use only this many training conversations (tiny runs, tests)
    eval_every: int = 50
    checkpoint_every: int = 50
    patience: int = 3
    max_steps: int | None = None
    seed: int = 0
    resume: bool = True
    model_cache: Path = Path("var/models")


def load_chat_model(name_or_path: str, model_cache: Path):
    """(tokenizer, fp32 model) of a bundled chat model — the fine-tuned one has its LoRA merged
    — or of a local Hugging Face directory / GGUF file."""
    from omnicoach.models.llm_loader import load_causal_lm
    from omnicoach.models.registry import BUNDLED, load_chat_weights

    specs = {spec.name: spec for spec in BUNDLED if spec.role == "chat"}
    if name_or_path not in specs:
        return load_causal_lm(Path(name_or_path), model_cache)
    return load_chat_weights(specs[name_or_path], model_cache)


def train_vlm(config: VLMConfig, on_step: Callable | None = None, log=print) -> dict:
    """Train one stage; returns a summary (steps, best validation loss, output directory)."""
    from accelerate import Accelerator
    from accelerate.utils import set_seed
    from tqdm.auto import tqdm
    from transformers import get_cosine_schedule_with_warmup

    if config.stage not in (1, 2):
        raise InvalidRequestError(f"stage must be 1 or 2, got {config.stage}")
    precision = config.precision or ("bf16" if bf16_is_fast() else "no")
    accelerator = Accelerator(cpu=not torch.cuda.is_available())
    set_seed(config.seed)
    out = Path(config.out)
    out.mkdir(parents=True, exist_ok=True)
    encoder = ImageEncoder(config.encoder, grid=config.grid)
    tokenizer, llm = load_chat_model(config.chat_model, config.model_cache)
    model = _vision_model(config, llm, encoder, bf16=precision == "bf16")
    trainable = [p for p in model.parameters() if p.requires_grad]
    image_tokens = encoder.tokens * model.projector.tokens_per_feature
    log(
        f"stage {config.stage}: {'projector' if config.stage == 1 else 'projector + LoRA'}; "
        f"trainable parameters: {sum(p.numel() for p in trainable):,}; "
        f"image tokens: {image_tokens} ({encoder.name}); precision: {precision}"
    )
    train_rows, validation_rows = _datasets(config, tokenizer, encoder, image_tokens)
    log(f"{len(train_rows)} training and {len(validation_rows)} validation conversations")
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    loader = torch.utils.data.DataLoader(
        train_rows,
        batch_size=config.batch_size,
        shuffle=True,
        generator=torch.Generator().manual_seed(config.seed),
        collate_fn=lambda rows: collate(rows, pad),
    )
    validation = torch.utils.data.DataLoader(
        validation_rows, batch_size=config.batch_size, collate_fn=lambda rows: collate(rows, pad)
    )
    learning_rate = config.learning_rate or (1e-3 if config.stage == 1 else 2e-4)
    optimizer = torch.optim.AdamW(trainable, lr=learning_rate, weight_decay=0.0)
    total = config.epochs * len(loader)
    total = min(total, config.max_steps or total)
    schedule = get_cosine_schedule_with_warmup(optimizer, max(1, total // 30), total)
    model, optimizer, loader, validation, schedule = accelerator.prepare(
        model, optimizer, loader, validation, schedule
    )

    state = {"step": 0, "best": math.inf, "stale": 0, "history": []}
    checkpoint = out / CHECKPOINT
    if config.resume and has_checkpoint(checkpoint):
        state = _load_checkpoint(model, optimizer, schedule, checkpoint)
        log(f"resumed from step {state['step']} (best validation loss {state['best']:.4f})")

    bar = tqdm(total=total, initial=state["step"], desc=f"vlm stage {config.stage}")
    started = time.time()
    stop = False
    while state["step"] < total and not stop:
        epoch, done = divmod(state["step"], len(loader))
        if hasattr(loader, "set_epoch"):
            loader.set_epoch(epoch)
        batches = accelerator.skip_first_batches(loader, done) if done else loader
        model.train()
        for batch in batches:
            loss = model(**batch).loss
            accelerator.backward(loss)
            accelerator.clip_grad_norm_(trainable, 1.0)
            optimizer.step()
            schedule.step()
            optimizer.zero_grad()
            state["step"] += 1
            step = state["step"]
            bar.update(1)
            bar.set_postfix(loss=f"{loss.item():.4f}")
            record = {"step": step, "train_loss": loss.item(), "validation_loss": None}
            if step % config.eval_every == 0 or step == total:
                if config.stage == 1:
                    record["validation_loss"], readout = alignment_validation(model, validation)
                    log(f"step {step}: {readout:.1%} of validation pictures read as their words")
                else:
                    record["validation_loss"] = validation_loss(model, validation, accelerator)
                if record["validation_loss"] < state["best"]:
                    state["best"], state["stale"] = record["validation_loss"], 0
                    _save_model(accelerator, model, tokenizer, encoder, config, out)
                else:
                    state["stale"] += 1
                log(f"step {step}: validation loss {record['validation_loss']:.4f}")
                stop = state["stale"] >= config.patience
                if stop:
                    log(f"early stop: {config.patience} evaluations without improvement")
            state["history"].append(record)
            if on_step:
                on_step(record, total)
            if step % config.checkpoint_every == 0 or step == total or stop:
                save_trainable(accelerator, model, optimizer, schedule, checkpoint, state)
            if step >= total or stop:
                break
    bar.close()
    write_curve(out, state["history"])
    return {
        "stage": config.stage,
        "steps": state["step"],
        "best_validation_loss": state["best"],
        "seconds": round(time.time() - started, 1),
        "out": str(out),
        "image_tokens": image_tokens,
        "precision": precision,
        "config": {k: str(v) if isinstance(v, Path) else v for k, v in asdict(config).items()},
    }


def bf16_is_fast() -> bool:
    """bf16 autocast pays where the hardware has bf16 matrix units: a GPU that supports it, or
    a CPU with AVX-512 BF16 / AMX (this machine's Xeon: a stage-2 step 1.8× faster than in
    fp32, benchmarks/vlm_step.py)."""
    if torch.cuda.is_available():
        return torch.cuda.is_bf16_supported()
    return torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported()


def _vision_model(config: VLMConfig, llm, encoder: ImageEncoder, bf16: bool):
    from peft import LoraConfig, get_peft_model

    projector = Projector(encoder.feature_dim, llm.config.hidden_size, config.tokens_per_feature)
    if config.projector is not None:
        projector = load_projector(Path(config.projector), encoder)
    elif config.stage == 2:
        raise InvalidRequestError(
            "stage 2 starts from a stage-1 projector: pass --projector <stage-1 output>"
        )
    for parameter in llm.parameters():
        parameter.requires_grad = False
    if config.stage == 2:
        lora = LoraConfig(
            r=config.lora_rank,
            lora_alpha=config.lora_alpha,
            lora_dropout=0.05,
            target_modules="all-linear",
            task_type="CAUSAL_LM",
        )
        llm = get_peft_model(llm, lora)
    return VisionLanguageModel(llm, projector, bf16)


def load_projector(directory: Path, encoder: ImageEncoder) -> Projector:
    """The trained projector (fp32) of a training output or artifact, checked against the
    encoder it was trained on."""
    vision, projector = read_projector(directory)
    if vision["encoder_name"] != encoder.name:
        raise InvalidRequestError(
            f"the projector in {directory} was trained on {vision['encoder_name']} features, "
            f"not {encoder.name}"
        )
    return projector


def collate(rows: list[dict], pad_id: int) -> dict[str, torch.Tensor]:
    """Stage 1: image features and caption words. Stage 2: the text batch of training/sft.py,
    with each row's image features and image start."""
    if "caption_ids" in rows[0]:
        return {
            "features": torch.stack([r["features"] for r in rows]),
            "caption_ids": torch.tensor([r["caption_ids"] for r in rows]),
        }
    batch = text_collate(rows, pad_id, multiple=32)
    batch["features"] = torch.stack([r["features"] for r in rows])
    batch["image_start"] = torch.tensor([r["image_start"] for r in rows])
    return batch


@torch.no_grad()
def alignment_validation(model, validation) -> tuple[float, float]:
    """Stage 1: the mean alignment loss, and the share of pictures whose image tokens, each
    read as its nearest word, spell the caption's first words exactly."""
    model.eval()
    embedding = model.llm.get_input_embeddings().weight.float()
    loss = exact = count = 0.0
    for batch in validation:
        result = model(**batch)
        words = read_as_words(result.projected, embedding)
        spelled = ((words == batch["caption_ids"]) | ~result.mask).all(-1)
        loss += result.loss.item() * len(words)
        exact += spelled.sum().item()
        count += len(words)
    model.train()
    return loss / count, exact / count


def _datasets(config: VLMConfig, tokenizer, encoder: ImageEncoder, image_tokens: int):
    from omnicoach.config import DEFAULT_SYSTEM_PROMPT

    def rows(path: Path, limit: int | None, seed_offset: int) -> list[dict]:
        samples = load_llava(path, config.images)
        folder = Path(config.images or Path(path).parent)
        names = [str(Path(s["image"]).relative_to(folder)) for s in samples]
        # Every image of the file is encoded (once, cached): a later --limit or stage reuses it.
        features = feature_cache(encoder, folder, sorted(set(names)))
        index = {name: i for i, name in enumerate(sorted(set(names)))}
        if limit is not None:
            chosen = random.Random(config.seed + seed_offset).sample(
                range(len(samples)), min(limit, len(samples))
            )
            samples, names = [samples[i] for i in chosen], [names[i] for i in chosen]
        encoded = []
        for sample, name in zip(samples, names, strict=True):
            messages = sample["messages"]
            if messages[0]["role"] != "system":  # what the server puts first (config.py)
                messages = [{"role": "system", "content": DEFAULT_SYSTEM_PROMPT}, *messages]
            if config.stage == 1:  # the image tokens should read as the caption's first words
                reply = next(m["content"] for m in messages if m["role"] == "assistant")
                words = tokenizer(reply, add_special_tokens=False)["input_ids"][:image_tokens]
                padded = words + [IGNORE] * (image_tokens - len(words))
                encoded.append({"caption_ids": padded, "features": features[index[name]]})
                continue
            row = tokenize_with_image(tokenizer, messages, image_tokens, config.max_length)
            if all(label == IGNORE for label in row["labels"]):
                continue  # the answer was cut off entirely
            encoded.append({**row, "features": features[index[name]]})
        return encoded

    train = rows(config.train, config.limit, 0)
    if config.validation:
        return train, rows(config.validation, None, 1)
    shuffled = random.Random(config.seed).sample(train, len(train))
    cut = max(1, len(train) // 10)
    return shuffled[cut:], shuffled[:cut]


def _save_model(accelerator, model, tokenizer, encoder: ImageEncoder, config, out: Path) -> None:
    """The best weights so far: projector (fp16), vision.json and, in stage 2, the adapter."""
    from safetensors.torch import save_file

    unwrapped = accelerator.unwrap_model(model)
    projector = unwrapped.projector.state_dict()
    weights = {k: v.detach().half().contiguous() for k, v in projector.items()}
    save_file(weights, out / (PROJECTOR + ".tmp"))
    (out / (PROJECTOR + ".tmp")).replace(out / PROJECTOR)
    vision = {
        "encoder": config.encoder,
        "encoder_name": encoder.name,
        "grid": encoder.grid,
        "feature_dim": encoder.feature_dim,
        "hidden": unwrapped.projector.hidden,
        "tokens_per_feature": unwrapped.projector.tokens_per_feature,
        "chat_model": config.chat_model,
        "stage": config.stage,
    }
    (out / VISION_CONFIG).write_text(json.dumps(vision, indent=2))
    if config.stage == 2:
        save_adapter(accelerator, unwrapped.llm, tokenizer, out / "adapter")


def _load_checkpoint(model, optimizer, schedule, checkpoint: Path) -> dict:
    from safetensors.torch import load_file

    trainable = load_file(checkpoint / "trainable.safetensors")
    result = model.load_state_dict({k: v.float() for k, v in trainable.items()}, strict=False)
    if result.unexpected_keys:
        raise InvalidRequestError(
            f"the checkpoint in {checkpoint} is for another stage or setting; "
            "start a new run (another --out) or use --no-resume"
        )
    return load_training_state(optimizer, schedule, checkpoint)


def ship(summary: dict, out: Path, artifact: Path, command: str, started: float, **facts) -> dict:
    """Copy a stage-2 output (projector, vision.json, adapter, loss curve) into ARTIFACT with a
    manifest (artifacts.py)."""
    from omnicoach.artifacts import write_manifest, writing

    config = summary["config"]
    with writing(artifact) as staging:
        for name in (PROJECTOR, VISION_CONFIG, "loss.csv", "loss.png"):
            shutil.copy(Path(out) / name, staging / name)
        if (Path(out) / "adapter").is_dir():
            shutil.copytree(Path(out) / "adapter", staging / "adapter")
        return write_manifest(
            staging,
            name=Path(artifact).name,
            command=command,
            seed=config["seed"],
            started=started,
            stage=summary["stage"],
            steps=summary["steps"],
            training_seconds=summary["seconds"],
            best_validation_loss=summary["best_validation_loss"],
            image_tokens=summary["image_tokens"],
            precision=summary["precision"],
            data={"train": config["train"], "validation": config["validation"]},
            hyperparameters={
                k: config[k]
                for k in ("epochs", "batch_size", "learning_rate", "lora_rank", "lora_alpha")
                + ("max_length", "encoder", "grid", "tokens_per_feature", "chat_model", "limit")
            },
            **facts,
        )
