"""The "train_vlm" job: both LLaVA stages of the vision-language model, one after the other,
on rendered exercise images (rendered into the data directory the first time a size is asked
for). Each stage's train
and validation loss are metrics (`stage1_loss`, `stage2_validation_loss`, …) the page draws
live; the projector, the adapter, the loss curves and the summary are its artifacts. A stopped
job resumes from its checkpoints when run again with the same params (same job folder)."""

import json
import shutil

from pydantic import BaseModel, Field

from omnicoach.jobs.context import JobContext
from omnicoach.training.vlm import VLMConfig, train_vlm


class VLMParams(BaseModel):
    model_config = {"extra": "forbid"}

    per_exercise: int = Field(
        default=100, ge=2, le=1000, description="Training images rendered per exercise."
    )
    grid: int = Field(default=1, ge=1, le=7, description="Feature tokens: grid × grid.")
    tokens_per_feature: int = Field(default=10, ge=1, le=32, description="Image tokens each.")
    stage1_limit: int | None = Field(default=None, ge=8, description="Caption conversations.")
    stage2_limit: int | None = Field(default=4000, ge=8, description="Instruction ones.")
    batch_size: int = Field(default=16, ge=1, le=64, description="Stage 2 (stage 1: 64).")
    max_steps: int | None = Field(default=None, ge=1, description="Per stage.")
    checkpoint_every: int = Field(
        default=50, ge=1, description="Steps between checkpoints (a stopped job resumes there)."
    )


def run(ctx: JobContext, params: VLMParams) -> dict:
    train_dir = _rendered(ctx, params.per_exercise)
    summaries = []
    projector = None
    for stage, train, limit in (
        (1, train_dir / "captions.json", params.stage1_limit),
        (2, train_dir / "instruct.json", params.stage2_limit),
    ):
        out = ctx.artifact_dir / f"stage{stage}"
        config = VLMConfig(
            stage=stage,
            train=train,
            out=out,
            chat_model=ctx.settings.chat_model,
            projector=projector,
            grid=params.grid,
            tokens_per_feature=params.tokens_per_feature,
            # Stage 1 runs no LLM forward (training/vlm.py): big batches, many epochs, each
            # ending early once validation stops improving.
            batch_size=64 if stage == 1 else params.batch_size,
            epochs=40 if stage == 1 else 1,
            limit=limit,
            max_steps=params.max_steps,
            checkpoint_every=params.checkpoint_every,
            model_cache=ctx.settings.model_cache_dir,
        )

        def on_step(record: dict, total: int, stage=stage) -> None:
            ctx.metric(f"stage{stage}_loss", record["step"], record["train_loss"])
            if record["validation_loss"] is not None:
                name = f"stage{stage}_validation_loss"
                ctx.metric(name, record["step"], record["validation_loss"])
            ctx.progress((stage - 1 + record["step"] / total) / 2)

        ctx.log(f"stage {stage} of 2")
        summaries.append(train_vlm(config, on_step, log=ctx.log))
        projector = out
    final = ctx.artifact_dir / "stage2"
    shutil.make_archive(str(ctx.artifact_dir / "vlm"), "zip", final, ".")
    ctx.add_artifact("vlm.zip")
    for stage in (1, 2):
        curve = ctx.artifact_dir / f"stage{stage}" / "loss.png"
        shutil.copy(curve, ctx.add_artifact(f"stage{stage}-loss.png"))
    ctx.add_artifact("summary.json").write_text(json.dumps(summaries, indent=2))
    return {
        f"stage{s['stage']}": {k: s[k] for k in ("steps", "best_validation_loss", "seconds")}
        for s in summaries
    }


def _rendered(ctx: JobContext, per_exercise: int):
    """The train split of PER_EXERCISE rendered images per exercise with its LLaVA JSON, kept
    in the data directory (rendering is deterministic: every job of this size shares it)."""
    from omnicoach.data import exercise_images, vlm_dataset

    images = ctx.settings.data_dir / f"exercise-images-{per_exercise}"
    train_dir = images / "train"
    if not (train_dir / "instruct.json").is_file():
        ctx.log(f"rendering {per_exercise} images per exercise into {images}")
        exercise_images.write_dataset(images, per_exercise, "train", progress=False)
        vlm_dataset.build(train_dir)
    return train_dir
