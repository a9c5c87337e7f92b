"""The "train_router" job: fine-tune the prompt router on the bundled data or an uploaded JSONL.

The trained router lands in the job's folder (``router/``, also downloadable as router.zip);
set ``router_model`` to that folder to serve it. Loss per step and validation accuracy per
epoch are the job's metrics, so the page draws the curves live.
"""

import json
import shutil

from pydantic import BaseModel, Field

from omnicoach.config import REPO
from omnicoach.errors import InvalidRequestError
from omnicoach.files import FileStore
from omnicoach.jobs.context import InvalidParam, JobContext, Submission
from omnicoach.jobs.uploads import checked_upload
from omnicoach.models.bundled import minilm_dir
from omnicoach.training.router import RouterTraining, load_examples, train_router

BUNDLED_DATA = REPO / "data" / "router" / "train.jsonl"


class RouterParams(BaseModel):
    model_config = {"extra": "forbid"}

    file_id: str | None = Field(
        default=None,
        description="An uploaded JSONL file ({prompt, label} per line) of the caller; a "
        "seeded tenth of it is held out for validation. Default: the bundled dataset with "
        "its own validation and test splits.",
    )
    epochs: int = Field(default=8, ge=1, le=50)
    max_steps: int | None = Field(default=None, ge=1, description="Stop after this many steps.")
    seed: int = 0
    baselines: bool = Field(default=False, description="Also measure the two baselines.")


def prepare(params: RouterParams, caller: Submission) -> RouterParams:
    if params.file_id is None:
        if not BUNDLED_DATA.is_file():
            error = InvalidRequestError(f"the bundled router data is missing ({BUNDLED_DATA})")
            raise InvalidParam("file_id", error)
        return params
    checked_upload(caller, params.file_id, load_examples)
    return params


def run(ctx: JobContext, params: RouterParams) -> dict:
    if params.file_id is None:
        data = BUNDLED_DATA
    else:
        files = FileStore(ctx.settings)
        data = files.path(files.get(ctx.db, ctx.user_id, params.file_id))
    out = ctx.artifact_dir / "router"
    config = RouterTraining(
        data=data,
        out=out,
        base_encoder=minilm_dir(),
        epochs=params.epochs,
        max_steps=params.max_steps,
        seed=params.seed,
        baselines=params.baselines,
        command=f"job train_router {params.model_dump_json()}",
        splits_beside=params.file_id is None,  # an uploaded file stands alone
    )

    def on_step(step: int, total: int, loss: float) -> None:
        ctx.metric("loss", step, loss)
        ctx.progress(step / total)

    def on_epoch(epoch: int, accuracy: float) -> None:
        ctx.metric("validation_accuracy", epoch, accuracy)

    manifest = train_router(config, on_step, on_epoch, log=ctx.log)
    archive = shutil.make_archive(str(ctx.artifact_dir / "router"), "zip", out)
    ctx.add_artifact("router.zip")
    ctx.add_artifact("manifest.json").write_text(json.dumps(manifest, indent=2))
    ctx.log(f"to serve it, set router_model = {out}")
    return {
        "router": str(out),
        "archive": archive,
        "evaluated_on": manifest["evaluated_on"],
        "accuracy": manifest["metrics"]["accuracy"],
        "macro_f1": manifest["metrics"]["macro_f1"],
    }
