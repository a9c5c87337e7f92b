"""The "train_image_lora" job: a LoRA for the image generator from an uploaded ZIP of pictures
(POST /train creates it; POST /jobs can too, naming the uploaded ZIP).

The ZIP is checked when the job is created (images/zip_dataset.py: every problem listed),
then read again by the job. Loss per step is the job's metric; a sample drawn from the first
caption every `sample_every` steps is an artifact (`sample-<step>.png`), so the Jobs view
shows the LoRA taking hold. When it ends, the LoRA is copied into the data directory's
`loras/<name>/`, where the server's generator finds it: from then on a prompt that says the
trigger word is drawn with it (or /generate names it as `lora`).
"""

import re
import shutil

from pydantic import BaseModel, Field, field_validator

from omnicoach.files import FileStore
from omnicoach.images.zip_dataset import read_training_zip
from omnicoach.jobs.context import JobContext, Submission
from omnicoach.jobs.uploads import checked_upload
from omnicoach.models.image_generator import load_image_generator
from omnicoach.training.imagegen_lora import LoraTraining, train_lora

NAME = re.compile(r"[a-z0-9][a-z0-9_-]{0,39}")


class ImageLoraParams(BaseModel):
    model_config = {"extra": "forbid"}

    file_id: str = Field(description="An uploaded ZIP of pictures (and captions) of the caller.")
    trigger: str = Field(
        min_length=2, max_length=40, description="The word that calls the LoRA up in a prompt."
    )
    caption_template: str | None = Field(
        default=None,
        description='For a ZIP without captions: every picture\'s caption, with "{trigger}" '
        'where the trigger word goes (default "a photo of {trigger}").',
    )
    name: str | None = Field(
        default=None, description="The LoRA's name (a-z, 0-9, - and _); default the trigger."
    )
    steps: int = Field(default=300, ge=1, le=5000)
    rank: int = Field(default=8, ge=1, le=64)
    learning_rate: float = Field(default=1e-4, gt=0, le=1e-2)
    sample_every: int = Field(default=100, ge=1)

    @field_validator("trigger")
    @classmethod
    def _one_word(cls, trigger: str) -> str:
        if not re.fullmatch(r"[\w-]+", trigger.strip()):
            raise ValueError("the trigger must be one word (letters, digits, - or _)")
        return trigger.strip()

    @property
    def lora_name(self) -> str:
        return self.name or self.trigger.lower()

    @field_validator("name")
    @classmethod
    def _plain_name(cls, name: str | None) -> str | None:
        if name is not None and not NAME.fullmatch(name):
            raise ValueError(
                "name must be 1–40 of a-z, 0-9, - and _, starting with a letter or digit"
            )
        return name


def _reader(params: ImageLoraParams):
    return lambda path: read_training_zip(
        path.read_bytes(), params.trigger, params.caption_template
    )


def prepare(params: ImageLoraParams, caller: Submission) -> ImageLoraParams:
    caller.registry.image_generator()  # no generator: the job is refused now, saying so
    checked_upload(caller, params.file_id, _reader(params))
    return params


def run(ctx: JobContext, params: ImageLoraParams) -> dict:
    files = FileStore(ctx.settings)
    zipped = files.path(files.get(ctx.db, ctx.user_id, params.file_id))
    layout, examples = _reader(params)(zipped)
    ctx.log(f"{len(examples)} pictures ({layout} layout)")
    # A copy of its own: the LoRA is added to this pipeline's UNet while it trains.
    drawing = load_image_generator(ctx.settings.image_generator_dir)
    out = ctx.artifact_dir / "lora"
    config = LoraTraining(
        name=params.lora_name,
        trigger=params.trigger,
        out=out,
        steps=params.steps,
        rank=params.rank,
        learning_rate=params.learning_rate,
        sample_every=params.sample_every,
    )

    def on_step(step: int, loss: float) -> None:
        ctx.metric("loss", step, loss)
        ctx.progress(step / params.steps)

    def on_sample(step: int, path) -> None:
        shutil.copy(path, ctx.add_artifact(f"sample-{step:06d}.png"))

    described = train_lora(drawing, examples, config, on_step, on_sample, log=ctx.log)
    _install(out, ctx.settings.lora_dir / config.name)
    for name in ("lora.json", "pytorch_lora_weights.safetensors"):
        shutil.copy(out / name, ctx.add_artifact(name))
    ctx.log(f'LoRA {config.name!r} installed: prompts that say "{params.trigger}" use it')
    return described


def _install(trained, target) -> None:
    """Copy the LoRA into the server's LoRA folder, replacing one of the same name whole."""
    staging = target.with_name(f".{target.name}.tmp")
    shutil.rmtree(staging, ignore_errors=True)
    shutil.copytree(trained, staging, ignore=shutil.ignore_patterns("samples"))
    shutil.rmtree(target, ignore_errors=True)
    staging.rename(target)
