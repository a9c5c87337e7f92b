"""Drawing: POST /generate (omnicoach's own, every sampler setting), POST
/v1/images/generations (OpenAI's), and POST /train (a ZIP of pictures → a LoRA job).

The first two draw through the assistant (assistant/drawing.py) with the registry's image
generator — the one trained here (artifacts/imagegen) or a configured diffusers directory —
in a generation slot like a chat answer. Every image is kept as a PNG file of the caller's
(purpose "image_generation"), so a `url` answer can point at it.
"""

import base64
import io
import time
from typing import Annotated, Literal

from fastapi import APIRouter, File, Form, Request, UploadFile
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool

from omnicoach.errors import OmnicoachError
from omnicoach.images.zip_dataset import ZipDatasetError, read_training_zip
from omnicoach.models.image_generator import DEFAULT_GUIDANCE
from omnicoach.server.auth import CurrentUser
from omnicoach.server.errors import APIError, from_domain_error
from omnicoach.server.openai_schemas import Seed
from omnicoach.server.routes_classify import checked_prompt

router = APIRouter(tags=["images"])


class GenerateRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    prompt: str = Field(description="What to draw.")
    negative_prompt: str | None = Field(None, description="What the picture should not show.")
    steps: int | None = Field(None, description="Sampler steps; default the server's (20).")
    guidance: float = Field(
        DEFAULT_GUIDANCE, description="Classifier-free guidance scale (0 = none)."
    )
    seed: Seed | None = Field(None, ge=0, description="Same seed, same picture; default random.")
    size: str | None = Field(None, description='"WxH"; default the model\'s own size.')
    n: int = Field(1, description="How many pictures (seeds seed, seed+1, …).")
    lora: str | None = Field(
        None, description="A LoRA by name; default: the one whose trigger word the prompt says."
    )


class OpenAIImageRequest(BaseModel):
    """OpenAI's images.generate body. quality, style and user are accepted and ignored."""

    model_config = ConfigDict(extra="forbid")

    prompt: str
    model: str | None = None
    n: int = 1
    size: str | None = None
    response_format: Literal["url", "b64_json"] = "url"
    quality: str | None = None
    style: str | None = None
    user: str | None = None


async def draw(request: Request, user: str, **settings) -> dict:
    """Draw as SETTINGS say (ImageGenerator.generate's arguments) through the assistant, in a
    generation slot; the stored pictures and how they were drawn. A bad setting is a 400
    naming it; no generator is a 500 naming the command that trains one."""
    state = request.app.state
    checked_prompt(settings["prompt"])
    try:
        await run_in_threadpool(state.registry.image_generator)
        async with state.runner.slot():
            drawn = await run_in_threadpool(state.assistant.draw, user, **settings)
    except OmnicoachError as exc:
        raise from_domain_error(exc) from exc  # a bad setting's error names it (param)
    images = [
        {
            "file_id": image.file_id,
            "url": f"{request.base_url}v1/files/{image.file_id}/content",
            "png": image.png,
            "size": image.size,
        }
        for image in drawn.images
    ]
    used = {"model": drawn.model, "seed": drawn.seed, "steps": drawn.steps, "lora": drawn.lora}
    return used | {"seconds": drawn.seconds, "images": images}


@router.post("/generate")
async def generate(body: GenerateRequest, request: Request, user: CurrentUser) -> dict:
    """Draw PROMPT: PNG pictures (base64) with their stored file ids and the settings used."""
    drawn = await draw(request, user, **body.model_dump())
    return {
        "model": drawn["model"],
        "prompt": body.prompt,
        "seed": drawn["seed"],
        "steps": drawn["steps"],
        "guidance": body.guidance,
        "lora": drawn["lora"],
        "seconds": round(drawn["seconds"], 3),
        "images": [
            {
                "file_id": image["file_id"],
                "url": image["url"],
                "size": image["size"],
                "b64_png": base64.b64encode(image["png"]).decode(),
            }
            for image in drawn["images"]
        ],
    }


@router.post("/v1/images/generations")
async def images_generations(body: OpenAIImageRequest, request: Request, user: CurrentUser) -> dict:
    """OpenAI's image generation: `url` (the stored file's content, which needs the caller's
    key while auth is on) or `b64_json`."""
    drawn = await draw(request, user, prompt=body.prompt, n=body.n, size=body.size)
    key = "url" if body.response_format == "url" else "b64_json"
    data = [
        {key: image["url"] if key == "url" else base64.b64encode(image["png"]).decode()}
        for image in drawn["images"]
    ]
    return {"created": int(time.time()), "data": data}


@router.post("/train", status_code=201)
async def train(
    request: Request,
    user: CurrentUser,
    file: Annotated[UploadFile, File(description="A ZIP of pictures, with or without captions.")],
    trigger: Annotated[str, Form(description="The word that will call the LoRA up.")],
    caption_template: Annotated[
        str | None, Form(description='Captions for a ZIP without any: "a photo of {trigger}".')
    ] = None,
    name: Annotated[str | None, Form(description="The LoRA's name; default the trigger.")] = None,
    steps: Annotated[int, Form(description="Training steps.")] = 300,
    learning_rate: Annotated[float, Form(description="The LoRA's learning rate.")] = 1e-4,
) -> dict:
    """Check the ZIP now — a 400 lists every problem (no images, an unreadable image, a
    missing caption, a wrong metadata column, unsafe paths, a zip bomb…) — then keep it and
    start the "train_image_lora" job that trains a LoRA on the generator; follow it under
    /jobs/{id}. When it ends, prompts that say TRIGGER are drawn with it."""
    from omnicoach.server.routes_jobs import job_object, submit

    data = await file.read()
    try:
        layout, examples = await run_in_threadpool(
            read_training_zip, data, trigger, caption_template
        )
    except ZipDatasetError as exc:
        raise APIError(400, str(exc), param="file", code=exc.code, problems=exc.problems) from exc
    state = request.app.state
    params = {"trigger": trigger, "steps": steps, "learning_rate": learning_rate}
    params |= {k: v for k, v in {"caption_template": caption_template, "name": name}.items() if v}
    stored = await run_in_threadpool(
        state.files.save, state.db, user, io.BytesIO(data), file.filename or "pictures.zip",
        "image_training",
    )  # fmt: skip
    try:
        job = await run_in_threadpool(
            submit, request, user, "train_image_lora", params | {"file_id": stored.id}
        )
    except Exception:  # refused (a bad trigger word, no generator): keep no orphan upload
        await run_in_threadpool(state.files.delete, state.db, user, stored.id)
        raise
    return job_object(job) | {"dataset": {"layout": layout, "pictures": len(examples)}}
