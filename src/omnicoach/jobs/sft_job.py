"""The "train_sft" job: LoRA fine-tuning of a chat model on the knowledge-base conversations
or an uploaded chat JSONL. Train and validation loss are its metrics (the page draws them
live); the adapter, the loss curve and the summary are its artifacts. A job that is stopped
resumes from its checkpoint when run again with the same params (same job folder)."""

import json
import shutil

from pydantic import BaseModel, Field

from omnicoach.config import REPO
from omnicoach.files import FileStore
from omnicoach.jobs.context import JobContext, Submission
from omnicoach.jobs.uploads import checked_upload
from omnicoach.training.sft import CHECKPOINT, SFTConfig, load_conversations, train_sft

BUNDLED_DATA = REPO / "data" / "sft"


class SFTParams(BaseModel):
    model_config = {"extra": "forbid"}

    file_id: str | None = Field(
        default=None,
        description="An uploaded chat JSONL ({messages: [...]} per line) of the caller; a "
        "seeded tenth is held out for validation. Default: data/sft (knowledge base).",
    )
    model: str | None = Field(
        default=None,
        description="The chat model to fine-tune (a fine-tuned one: its base); "
        "default: the server's.",
    )
    epochs: int = Field(default=2, ge=1, le=20)
    batch_size: int = Field(default=8, ge=1, le=64)
    learning_rate: float = Field(default=2e-4, gt=0, le=1e-2)
    lora_rank: int = Field(default=16, ge=1, le=256)
    max_length: int = Field(default=384, ge=16, le=4096)
    max_steps: int | None = Field(default=None, ge=1)
    checkpoint_every: int = Field(
        default=50, ge=1, description="Steps between checkpoints (a stopped job resumes there)."
    )


def prepare(params: SFTParams, caller: Submission) -> SFTParams:
    model = caller.chat_model(params.model)
    if params.file_id is not None:
        checked_upload(caller, params.file_id, load_conversations)
    return params.model_copy(update={"model": model})


def run(ctx: JobContext, params: SFTParams) -> dict:
    if params.file_id is None:
        train, validation = BUNDLED_DATA / "train.jsonl", BUNDLED_DATA / "validation.jsonl"
    else:
        files = FileStore(ctx.settings)
        train, validation = files.path(files.get(ctx.db, ctx.user_id, params.file_id)), None
    out = ctx.artifact_dir / "sft"
    config = SFTConfig(
        train=train,
        validation=validation,
        out=out,
        base_model=ctx.registry.base_spec(params.model).locate(),
        epochs=params.epochs,
        batch_size=params.batch_size,
        learning_rate=params.learning_rate,
        lora_rank=params.lora_rank,
        max_length=params.max_length,
        max_steps=params.max_steps,
        checkpoint_every=params.checkpoint_every,
        model_cache=ctx.settings.model_cache_dir,
    )

    def on_step(record: dict, total: int) -> None:
        ctx.metric("loss", record["step"], record["train_loss"])
        if record["validation_loss"] is not None:
            ctx.metric("validation_loss", record["step"], record["validation_loss"])
        ctx.progress(record["step"] / total)

    ctx.resume_from(out / CHECKPOINT)
    summary = train_sft(config, on_step, log=ctx.log)
    shutil.make_archive(str(ctx.artifact_dir / "adapter"), "zip", out / "adapter")
    ctx.add_artifact("adapter.zip")
    for name in ("loss.csv", "loss.png"):
        shutil.copy(out / name, ctx.add_artifact(name))
    ctx.add_artifact("summary.json").write_text(json.dumps(summary, indent=2))
    return {key: summary[key] for key in ("method", "steps", "best_validation_loss", "seconds")}
