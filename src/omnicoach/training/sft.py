"""Supervised fine-tuning of the chat model with LoRA (peft), on chat JSONL.

    omnicoach train sft --train data/sft/train.jsonl [--validation …] [--out artifacts/sft-lora]
    accelerate launch --multi_gpu --num_processes 2 -m omnicoach.training.sft --train … --out …
    torchrun --nproc_per_node 2 -m omnicoach.training.sft --train … --out …

(DDP: without CUDA, accelerate's --multi_gpu still starts the processes, through torchrun, and
they train on the CPU over gloo.)

Data: one conversation per line in OpenAI's messages format (`{"messages": [{"role", "content"},
…]}`). The loss covers the assistant turns only: the model learns to answer, not to ask.

On a CPU the base stays fp32 and LoRA adapters train on every linear layer; with CUDA and
bitsandbytes the base is loaded in 4 bits (QLoRA) instead. The log says which one ran.
Training saves a checkpoint (LoRA weights in fp16, optimiser moments in bfloat16, scheduler,
step; not the frozen base) every `checkpoint_every` steps, replacing the previous one, and `resume`
continues from it; validation loss is measured every `eval_every` steps and training stops
early after `patience` evaluations without a new best. The best adapter is what the output
holds, with the loss curve as CSV and PNG.
"""

import argparse
import csv
import json
import math
import os
import random
import shutil
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from omnicoach.errors import InvalidRequestError
from omnicoach.training.checkpoints import (
    has_checkpoint,
    load_training_state,
    replace_directory,
    save_checkpoint,
    staging_for,
)
from omnicoach.training.jsonl import read_jsonl

IGNORE = -100  # label of tokens that carry no loss (prompt, padding)
CHECKPOINT = "checkpoint"  # the latest resumable state, inside the output directory


@dataclass
class SFTConfig:
    train: Path
    out: Path
    base_model: Path  # a Hugging Face directory (or a GGUF file, dequantised to fp32)
    validation: Path | None = None  # default: a seeded tenth of train
    epochs: int = 3
    batch_size: int = 8
    learning_rate: float = 2e-4
    lora_rank: int = 16
    lora_alpha: int = 32
    lora_dropout: float = 0.05
    max_length: int = 512
    gradient_checkpointing: bool = True
    eval_every: int = 50
    checkpoint_every: int = 50
    patience: int = 3
    max_steps: int | None = None
    seed: int = 0
    resume: bool = True
    model_cache: Path = Path("var/models")
    # Start from a trained adapter (a directory with adapter_config.json) instead of a new one:
    # to go on training a shipped fine-tune on new data. Its LoRA settings then apply.
    init_adapter: Path | None = None


def load_conversations(path: Path) -> list[list[dict]]:
    """Conversations from chat JSONL; a malformed line is an error naming file and line."""
    conversations = []
    for number, row in read_jsonl(path):
        try:
            messages = row["messages"]
            ok = all(m["role"] in ("system", "user", "assistant") for m in messages)
            ok = ok and all(isinstance(m["content"], str) for m in messages)
        except (KeyError, TypeError):
            ok = False
        if not ok or not any(m["role"] == "assistant" for m in messages):
            raise InvalidRequestError(
                f'{path}:{number}: expected {{"messages": [{{"role", "content"}}, …]}} '
                "with text contents and at least one assistant turn"
            )
        conversations.append(messages)
    if not conversations:
        raise InvalidRequestError(f"{path} holds no conversations")
    return conversations


def tokenize(tokenizer, messages: list[dict], max_length: int) -> dict[str, list[int]]:
    """Token ids of the whole conversation, and labels that are the ids on assistant replies
    (and their end-of-turn) and IGNORE elsewhere. Spans are found by rendering the template up
    to each reply and including it, so any chat template works."""
    text = tokenizer.apply_chat_template(messages, tokenize=False)
    spans = []
    for i, message in enumerate(messages):
        if message["role"] == "assistant":
            before = tokenizer.apply_chat_template(
                messages[:i], tokenize=False, add_generation_prompt=True
            )
            through = tokenizer.apply_chat_template(messages[: i + 1], tokenize=False)
            spans.append((len(before), len(through)))
    encoded = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
    ids = encoded["input_ids"][:max_length]
    labels = [
        token if any(start <= s < end for start, end in spans) else IGNORE
        for token, (s, _) in zip(ids, encoded["offset_mapping"], strict=False)
    ]
    return {"input_ids": ids, "labels": labels}


def collate(rows: list[dict], pad_id: int, multiple: int = 1) -> dict[str, torch.Tensor]:
    """Rows padded to the longest, rounded up to MULTIPLE: fewer distinct batch shapes, so fewer
    kernels for the CPU's bf16 path (oneDNN) to create and cache, one per shape."""
    width = -(-max(len(r["input_ids"]) for r in rows) // multiple) * multiple
    ids = torch.full((len(rows), width), pad_id)
    labels = torch.full((len(rows), width), IGNORE)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for i, row in enumerate(rows):
        n = len(row["input_ids"])
        ids[i, :n] = torch.tensor(row["input_ids"])
        labels[i, :n] = torch.tensor(row["labels"])
        mask[i, :n] = 1
    return {"input_ids": ids, "labels": labels, "attention_mask": mask}


def train_sft(config: SFTConfig, on_step: Callable | None = None, log=print) -> dict:
    """Train; returns a summary (steps, best validation loss, where the adapter is)."""
    from accelerate import Accelerator
    from accelerate.utils import set_seed
    from tqdm.auto import tqdm
    from transformers import get_cosine_schedule_with_warmup

    accelerator = Accelerator(cpu=not torch.cuda.is_available())
    say = log if accelerator.is_main_process else (lambda *_: None)
    set_seed(config.seed)
    tokenizer, model, method = _load_model(config)
    processes = accelerator.num_processes
    say(
        f"{method}, {processes} process{'es (DDP)' if processes > 1 else ''}; trainable "
        f"parameters: {sum(p.numel() for p in model.parameters() if p.requires_grad):,}"
    )

    train_rows, validation_rows = _datasets(config, tokenizer)
    say(f"{len(train_rows)} training and {len(validation_rows)} validation conversations")
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    generator = torch.Generator().manual_seed(config.seed)
    loader = torch.utils.data.DataLoader(
        train_rows,
        batch_size=config.batch_size,
        shuffle=True,
        generator=generator,
        collate_fn=lambda rows: collate(rows, pad),
    )
    validation = torch.utils.data.DataLoader(
        validation_rows, batch_size=config.batch_size, collate_fn=lambda rows: collate(rows, pad)
    )
    optimizer = torch.optim.AdamW(
        [p for p in model.parameters() if p.requires_grad], lr=config.learning_rate
    )
    total = config.epochs * math.ceil(len(loader) / accelerator.num_processes)
    total = min(total, config.max_steps or total)
    schedule = get_cosine_schedule_with_warmup(optimizer, max(1, total // 20), total)
    model, optimizer, loader, validation, schedule = accelerator.prepare(
        model, optimizer, loader, validation, schedule
    )

    out = Path(config.out)
    state = {"step": 0, "best": math.inf, "stale": 0, "history": []}
    checkpoint = out / CHECKPOINT
    if config.resume and has_checkpoint(checkpoint):
        state = load_trainable(accelerator, model, optimizer, schedule, checkpoint)
        say(f"resumed from step {state['step']} (best validation loss {state['best']:.4f})")

    per_epoch = len(loader)
    bar = tqdm(
        total=total, initial=state["step"], desc="sft", disable=not accelerator.is_main_process
    )
    started = time.time()
    stop = False
    while state["step"] < total and not stop:
        epoch, done = divmod(state["step"], per_epoch)
        if hasattr(loader, "set_epoch"):  # each epoch its own (seeded) order
            loader.set_epoch(epoch)
        batches = accelerator.skip_first_batches(loader, done) if done else loader
        model.train()
        for batch in batches:
            loss = model(**batch).loss
            accelerator.backward(loss)
            accelerator.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
            schedule.step()
            optimizer.zero_grad()
            state["step"] += 1
            step = state["step"]
            train_loss = accelerator.reduce(loss.detach(), "mean").item()
            bar.update(1)
            bar.set_postfix(loss=f"{train_loss:.4f}")
            record = {"step": step, "train_loss": train_loss, "validation_loss": None}
            if step % config.eval_every == 0 or step == total:
                record["validation_loss"] = validation_loss(model, validation, accelerator)
                if record["validation_loss"] < state["best"]:
                    state["best"], state["stale"] = record["validation_loss"], 0
                    save_adapter(accelerator, model, tokenizer, out / "adapter")
                else:
                    state["stale"] += 1
                say(f"step {step}: validation loss {record['validation_loss']:.4f}")
                stop = state["stale"] >= config.patience
                if stop:
                    say(f"early stop: {config.patience} evaluations without improvement")
            state["history"].append(record)
            if on_step and accelerator.is_main_process:
                on_step(record, total)
            if step % config.checkpoint_every == 0 or step == total or stop:
                save_trainable(accelerator, model, optimizer, schedule, checkpoint, state)
            if step >= total or stop:
                break
    bar.close()
    if accelerator.is_main_process:
        write_curve(out, state["history"])
    # DDP keeps every process's weights identical; this shows it (one number per process).
    trainable = [p.detach().flatten() for p in model.parameters() if p.requires_grad]
    flat = torch.cat(trainable).double()
    fingerprint = (flat * torch.arange(1, 1 + len(flat), device=flat.device)).sum()
    fingerprints = accelerator.gather(fingerprint[None]).tolist()
    accelerator.wait_for_everyone()
    return {
        "method": method,
        "processes": accelerator.num_processes,
        "weight_fingerprints": fingerprints,
        "steps": state["step"],
        "best_validation_loss": state["best"],
        "seconds": round(time.time() - started, 1),
        "adapter": str(out / "adapter"),
        "config": {k: str(v) if isinstance(v, Path) else v for k, v in asdict(config).items()},
    }


def _load_model(config: SFTConfig):
    from peft import LoraConfig, get_peft_model

    from omnicoach.models.llm_loader import load_causal_lm

    method = "LoRA on the fp32 base"
    if torch.cuda.is_available() and _has_bitsandbytes() and Path(config.base_model).is_dir():
        from peft import prepare_model_for_kbit_training
        from transformers import AutoModelForCausalLM, AutoTokenizer, BitsAndBytesConfig

        quantization = BitsAndBytesConfig(
            load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_compute_dtype=torch.bfloat16
        )
        tokenizer = AutoTokenizer.from_pretrained(config.base_model)
        model = AutoModelForCausalLM.from_pretrained(
            config.base_model, quantization_config=quantization
        )
        model = prepare_model_for_kbit_training(model, config.gradient_checkpointing)
        method = "QLoRA (4-bit base, bitsandbytes)"
    else:
        tokenizer, model = load_causal_lm(config.base_model, config.model_cache)
    if config.gradient_checkpointing:
        # Recompute activations in the backward pass: ~half the memory for ~30 % more time.
        model.activation_checkpointing_enable({"use_reentrant": False})
        model.config.use_cache = False
    if config.init_adapter:
        from peft import PeftModel

        model = PeftModel.from_pretrained(model, config.init_adapter, is_trainable=True)
        return tokenizer, model, f"{method}, from the adapter in {config.init_adapter}"
    lora = LoraConfig(
        r=config.lora_rank,
        lora_alpha=config.lora_alpha,
        lora_dropout=config.lora_dropout,
        target_modules="all-linear",
        task_type="CAUSAL_LM",
    )
    return tokenizer, get_peft_model(model, lora), method


def _has_bitsandbytes() -> bool:
    try:
        import bitsandbytes  # noqa: F401
    except ImportError:
        return False
    return True


def _datasets(config: SFTConfig, tokenizer) -> tuple[list[dict], list[dict]]:
    train = load_conversations(config.train)
    if config.validation:
        validation = load_conversations(config.validation)
    else:
        shuffled = random.Random(config.seed).sample(train, len(train))
        cut = max(1, len(train) // 10)
        validation, train = shuffled[:cut], shuffled[cut:]

    def rows(conversations):
        encoded = [tokenize(tokenizer, c, config.max_length) for c in conversations]
        return [r for r in encoded if any(label != IGNORE for label in r["labels"])]

    return rows(train), rows(validation)


@torch.no_grad()
def validation_loss(model, validation, accelerator) -> float:
    """Mean loss per answer token over the validation set (all processes together)."""
    model.eval()
    total = torch.zeros(2, device=accelerator.device)
    for batch in validation:
        tokens = (batch["labels"][:, 1:] != IGNORE).sum()
        total += torch.stack([model(**batch).loss.detach() * tokens, tokens.float()])
    total = accelerator.reduce(total, "sum")
    model.train()
    return (total[0] / total[1].clamp(min=1)).item()


def save_adapter(accelerator, model, tokenizer, directory: Path) -> None:
    from safetensors.torch import load_file, save_file

    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        staging = staging_for(directory)
        accelerator.unwrap_model(model).save_pretrained(staging)
        (staging / "README.md").unlink(missing_ok=True)  # peft's empty model card template
        # fp16 halves the artifact; LoRA weights lose nothing measurable (README, Fine-tuning).
        weights = staging / "adapter_model.safetensors"
        save_file({k: v.half() for k, v in load_file(weights).items()}, weights)
        replace_directory(directory, staging)


def save_trainable(
    accelerator, model, optimizer, schedule, checkpoint: Path, state: dict, extra=None
):
    """The trainable (LoRA) weights in fp16 and the training state (training/checkpoints.py).
    The frozen base model is not saved: it is the bundled one. EXTRA(directory), if given,
    writes more files into the same checkpoint (e.g. averaged weights)."""

    def write_weights(directory: Path) -> None:
        from safetensors.torch import save_file

        trainable = {
            name: p.detach().half().contiguous()
            for name, p in accelerator.unwrap_model(model).named_parameters()
            if p.requires_grad
        }
        save_file(trainable, directory / "trainable.safetensors")
        if extra is not None:
            extra(directory)

    save_checkpoint(accelerator, optimizer, schedule, checkpoint, state, write_weights)


def load_trainable(accelerator, model, optimizer, schedule, checkpoint: Path) -> dict:
    """Every process loads the same state (the optimiser casts its moments back to fp32)."""
    from safetensors.torch import load_file

    trainable = load_file(checkpoint / "trainable.safetensors")
    unwrapped = accelerator.unwrap_model(model)
    missing = unwrapped.load_state_dict(
        {name: value.float() for name, value in trainable.items()}, strict=False
    )
    if missing.unexpected_keys:
        raise InvalidRequestError(
            f"the checkpoint in {checkpoint} is for another model or LoRA setting; "
            "start a new run (another --out) or use --no-resume"
        )
    return load_training_state(optimizer, schedule, checkpoint)


def write_curve(
    out: Path, history: list[dict], ylabel: str = "loss (nats per answer token)"
) -> None:
    with open(out / "loss.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, ["step", "train_loss", "validation_loss"])
        writer.writeheader()
        writer.writerows(history)
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    ax.plot([h["step"] for h in history], [h["train_loss"] for h in history], label="train")
    points = [h for h in history if h["validation_loss"] is not None]
    ax.plot(
        [h["step"] for h in points],
        [h["validation_loss"] for h in points],
        "o-",
        label="validation",
    )
    ax.set_xlabel("step")
    ax.set_ylabel(ylabel)
    ax.legend()
    fig.tight_layout()
    fig.savefig(out / "loss.png", dpi=100)
    plt.close(fig)


def ship_adapter(
    summary: dict, out: Path, artifact: Path, command: str, started: float, **facts
) -> dict:
    """Copy the best adapter and the loss curve from the training directory OUT into the
    artifact directory ARTIFACT, with a manifest (artifacts.py); returns the manifest."""
    from omnicoach.artifacts import write_manifest, writing

    config = summary["config"]
    with writing(artifact) as staging:
        shutil.copytree(Path(out) / "adapter", staging / "adapter")
        for name in ("loss.csv", "loss.png"):
            shutil.copy(Path(out) / name, staging / name)
        return write_manifest(
            staging,
            name=Path(artifact).name,
            command=command,
            seed=config["seed"],
            started=started,
            method=summary["method"],
            processes=summary["processes"],
            steps=summary["steps"],
            training_seconds=summary["seconds"],
            best_validation_loss=summary["best_validation_loss"],
            data={"train": config["train"], "validation": config["validation"]},
            hyperparameters={
                k: config[k]
                for k in ("epochs", "batch_size", "learning_rate", "lora_rank", "lora_alpha")
                + ("lora_dropout", "max_length", "gradient_checkpointing", "eval_every")
            },
            **facts,
        )


def training_device() -> str:
    """What trained it, for the manifest."""
    import peft
    import transformers

    where = (
        torch.cuda.get_device_name()
        if torch.cuda.is_available()
        else f"CPU, {os.cpu_count()} cores"
    )
    return (
        f"{where}; torch {torch.__version__}, transformers {transformers.__version__}, "
        f"peft {peft.__version__}"
    )


def main() -> None:
    """`python -m omnicoach.training.sft` / `accelerate launch -m omnicoach.training.sft`."""
    parser = argparse.ArgumentParser(description=__doc__)
    for name, field in SFTConfig.__dataclass_fields__.items():
        flag = "--" + name.replace("_", "-")
        if field.type is bool:
            parser.add_argument(flag, action=argparse.BooleanOptionalAction, default=field.default)
        elif name in ("train", "out", "base_model"):
            parser.add_argument(flag, type=Path, required=True)
        else:
            kind = Path if "Path" in str(field.type) else int if "int" in str(field.type) else float
            parser.add_argument(flag, type=kind, default=field.default)
    config = SFTConfig(**vars(parser.parse_args()))
    summary = train_sft(config)
    if int(os.environ.get("RANK", "0")) == 0:  # one summary, not one per process
        print(json.dumps(summary))


if __name__ == "__main__":
    main()
