"""Resumable training checkpoints, shared by the trainers (sft.py, pretrain.py).

A checkpoint is a directory that replaces the previous one only once complete (written beside
it, then renamed): the trainer's weights (written by the trainer: LoRA weights only, or the
whole model), the optimiser's state with its moment tensors in bfloat16, the scheduler and
the progress (JSON). Small enough to commit, so that another machine can resume the run.
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
        staging = checkpoint.with_name(checkpoint.name + ".tmp")
        shutil.rmtree(staging, ignore_errors=True)
        staging.mkdir(parents=True)
        write_weights(staging)
        optimizer_state = optimizer.state_dict()  # its inner dicts are the live state: copy
        optimizer_state["state"] = {
            index: {key: _bf16(value) for key, value in moments.items()}
            for index, moments in optimizer_state["state"].items()
        }
        torch.save(optimizer_state, staging / "optimizer.pt")
        torch.save(schedule.state_dict(), staging / "scheduler.pt")
        (staging / "progress.json").write_text(json.dumps(state))
        shutil.rmtree(checkpoint, ignore_errors=True)
        staging.rename(checkpoint)
    accelerator.wait_for_everyone()


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
