"""The "pretrain" job: a small Llama trained from random weights on the project's texts and
generated text (training/pretrain.py). Train and held-out loss are its metrics (the page draws
them live); the curve, the log and the comparison report are its artifacts. A job that is
stopped resumes from its checkpoint when run again with the same params (same job folder)."""

import shutil

from pydantic import BaseModel, Field, model_validator

from omnicoach.jobs.context import JobContext
from omnicoach.training.pretrain import CHECKPOINT, PretrainConfig, train_pretrain

ARTIFACTS = ("loss.png", "loss.csv", "log.jsonl", "report.md", "report.json", "manifest.json")


class PretrainParams(BaseModel):
    model_config = {"extra": "forbid"}

    max_minutes: float = Field(default=10.0, gt=0, le=24 * 60, description="Training budget.")
    max_steps: int | None = Field(default=None, ge=1)
    synthetic_workers: int = Field(
        default=1, ge=0, le=16, description="Processes generating text with the chat model."
    )
    synthetic_share: float = Field(
        default=0.5, ge=0, le=1, description="Share of training rows from generated text."
    )
    target_drop: float = Field(
        default=1.0, gt=0, description="Target: the initial loss minus this many nats."
    )
    stop_at_target: bool = True
    seed: int = 0
    checkpoint_every: int = Field(
        default=50, ge=1, description="Steps between checkpoints (a stopped job resumes there)."
    )

    @model_validator(mode="after")
    def _workers_for_the_share(self):
        if self.synthetic_share > 0 and self.synthetic_workers == 0:
            raise ValueError("synthetic_share > 0 needs at least one synthetic worker")
        return self


def run(ctx: JobContext, params: PretrainParams) -> dict:
    out = ctx.artifact_dir / "pretrain"
    config = PretrainConfig(
        out=out,
        max_minutes=params.max_minutes,
        max_steps=params.max_steps,
        synthetic_workers=params.synthetic_workers,
        synthetic_share=params.synthetic_share,
        target_drop=params.target_drop,
        stop_at_target=params.stop_at_target,
        seed=params.seed,
        checkpoint_every=params.checkpoint_every,
        model_cache=ctx.settings.model_cache_dir,
    )

    def on_step(record: dict, state: dict) -> None:
        ctx.metric("loss", record["step"], record["train_loss"])
        if record["heldout_loss"] is not None:
            ctx.metric("heldout_loss", record["step"], record["heldout_loss"])
        by_time = record["seconds"] / (params.max_minutes * 60)
        by_steps = record["step"] / params.max_steps if params.max_steps else 0.0
        ctx.progress(max(by_time, by_steps))

    ctx.resume_from(out / CHECKPOINT)
    summary = train_pretrain(config, on_step, log=ctx.log, command=f"job pretrain {params}")
    for name in ARTIFACTS:
        shutil.copy(out / name, ctx.add_artifact(name))
    report = summary["report"]
    return {
        "steps": summary["steps"],
        "tokens": summary["tokens"],
        "stopped_by": summary["stopped_by"],
        "target_reached": summary["target_reached"],
        "heldout_loss": report["heldout_loss"],
        "reference_heldout_loss": report["reference_heldout_loss"],
        "gap_nats": report["gap_nats"],
        "tokens_needed": report["fit"].get("tokens_needed"),
    }
