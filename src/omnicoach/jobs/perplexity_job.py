"""The "perplexity" job: how well a chat model predicts an uploaded text file."""

import json
import time
from dataclasses import asdict

from pydantic import BaseModel, Field, ValidationInfo, field_validator

from omnicoach.errors import InvalidRequestError, NotFoundError
from omnicoach.evaluation.perplexity import WindowDone, perplexity
from omnicoach.files import FileStore
from omnicoach.jobs.context import InvalidParam, JobContext, Submission

ARTIFACT = "perplexity.json"


class PerplexityParams(BaseModel):
    model_config = {"extra": "forbid"}

    file_id: str = Field(min_length=1, description="An uploaded text/plain file of the caller.")
    model: str | None = Field(default=None, description="A chat model; default: the server's.")
    window: int = Field(
        default=512, ge=2, le=8192, description="Tokens per forward pass (at most the context)."
    )
    stride: int = Field(
        default=256, ge=1, description="Tokens between windows; smaller gives more context."
    )

    @field_validator("stride")
    @classmethod
    def _below_window(cls, stride: int, info: ValidationInfo) -> int:
        window = info.data.get("window")
        if window is not None and stride >= window:
            raise ValueError(f"stride must be smaller than window ({window})")
        return stride


def prepare(params: PerplexityParams, caller: Submission) -> PerplexityParams:
    """The file must be the caller's text; the model is fixed now, so the job records it."""
    try:
        stored = FileStore(caller.settings).get(caller.db, caller.user_id, params.file_id)
    except NotFoundError as exc:
        raise InvalidParam("file_id", exc) from exc
    if stored.content_type != "text/plain":
        error = InvalidRequestError(
            f"file {params.file_id} is {stored.content_type}; perplexity needs a text file"
        )
        raise InvalidParam("file_id", error)
    return params.model_copy(update={"model": caller.chat_model(params.model)})


def run(ctx: JobContext, params: PerplexityParams) -> dict:
    files = FileStore(ctx.settings)
    stored = files.get(ctx.db, ctx.user_id, params.file_id)
    text = files.path(stored).read_text(encoding="utf-8")
    llm = ctx.registry.chat(params.model)
    # The window cannot exceed what the model attends to; the stride shrinks with it.
    window = min(params.window, llm.context_length)
    stride = min(params.stride, window - 1)
    ctx.log(f"scoring {stored.filename} with {llm.name}: window {window}, stride {stride} tokens")

    def report(done: WindowDone) -> None:
        ctx.metric("perplexity", done.index + 1, done.perplexity)
        ctx.progress((done.index + 1) / done.windows)

    started = time.monotonic()
    scored = perplexity(llm.model, llm.tokenizer, text, window, stride, report)
    result = {
        "model": llm.name,
        "file_id": stored.id,
        "window": window,
        "stride": stride,
        **asdict(scored),
        "seconds": round(time.monotonic() - started, 3),
    }
    ctx.add_artifact(ARTIFACT).write_text(json.dumps(result, indent=2) + "\n")
    ctx.log(
        f"perplexity {scored.perplexity:.3f} (mean NLL {scored.mean_nll:.4f} nats) over "
        f"{scored.tokens_scored} tokens in {result['seconds']:.1f} s"
    )
    return result
