"""Resumable training checkpoints, shared by the trainers (sft.py, pretrain.py, vlm.py,
imagegen.py).

A checkpoint is a directory that replaces the previous one only once complete: written
beside it, then swapped in by replace_directory, so that a kill at any moment leaves one whole
copy. It holds the trainer's weights (written by the trainer: LoRA weights only, or the whole
model), the optimiser's state with its moment tensors in bfloat16, the scheduler and the
progress (JSON). Small enough to commit, so that another machine can resume the run.
"""

import json
import shutil
from collections.abc import Callable
from pathlib import Path

import torch


def save_checkpoint(
    accelerator, optimizer, schedule, checkpoint: Path, state: dict, write_weights: Callable
) -> None:
    """Write the checkpoint from the main process; WRITE_WEIGHTS(directory) adds the weights."""
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        staging = staging_for(checkpoint)
        write_weights(staging)
        optimizer_state = optimizer.state_dict()  # its inner dicts are the live state: copy
        optimizer_state["state"] = {
            index: {key: _bf16(value) for key, value in moments.items()}
            for index, moments in optimizer_state["state"].items()
        }
        torch.save(optimizer_state, staging / "optimizer.pt")
        torch.save(schedule.state_dict(), staging / "scheduler.pt")
        (staging / "progress.json").write_text(json.dumps(state))
        replace_directory(checkpoint, staging)
    accelerator.wait_for_everyone()


def staging_for(directory: Path) -> Path:
    """An empty directory beside DIRECTORY to write its next version into."""
    staging = directory.with_name(directory.name + ".tmp")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    return staging


def replace_directory(directory: Path, staging: Path) -> None:
    """Swap the complete STAGING in as DIRECTORY. The old version is moved aside before the
    new one moves in and deleted after, so a process killed between the two renames leaves
    DIRECTORY.old, which restore_directory puts back: never no copy at all."""
    previous = directory.with_name(directory.name + ".old")
    restore_directory(directory)
    shutil.rmtree(previous, ignore_errors=True)
    if directory.exists():
        directory.rename(previous)
    staging.rename(directory)
    shutil.rmtree(previous, ignore_errors=True)


def restore_directory(directory: Path) -> None:
    """Put back DIRECTORY.old when a kill came between replace_directory's two renames."""
    previous = directory.with_name(directory.name + ".old")
    if not directory.exists() and previous.is_dir():
        previous.rename(directory)


def has_checkpoint(checkpoint: Path) -> bool:
    """Whether a complete checkpoint is there to resume (restored first if a kill left it
    aside)."""
    restore_directory(checkpoint)
    return (checkpoint / "progress.json").is_file()


def _bf16(value):
    """bfloat16 for moment tensors: Adam's second moments are often below fp16's smallest
    number (6e-8) and would resume as zeros, blowing up the first updates; bfloat16 has fp32's
    range. The step count and other scalars stay as they are."""
    if torch.is_tensor(value) and value.is_floating_point() and value.dim():
        return value.to(torch.bfloat16)
    return value


def load_training_state(optimizer, schedule, checkpoint: Path) -> dict:
    """The optimiser (its moments cast back to fp32) and scheduler state; returns the progress.
    The trainer loads its weights itself."""
    optimizer.load_state_dict(torch.load(checkpoint / "optimizer.pt", weights_only=True))
    schedule.load_state_dict(torch.load(checkpoint / "scheduler.pt", weights_only=True))
    return json.loads((Path(checkpoint) / "progress.json").read_text())
