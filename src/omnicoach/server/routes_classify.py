"""POST /classify: what the prompt router makes of a prompt (models/prompt_router.py)."""

from fastapi import APIRouter, Request
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from omnicoach.server.errors import APIError

router = APIRouter(tags=["router"])

# Longer text is not a prompt a person typed; the model reads 128 tokens of it anyway.
MAX_PROMPT_CHARS = 8000


class ClassifyRequest(BaseModel):
    prompt: str = Field(description="A chat message, as the user typed it.")


class ClassifyResponse(BaseModel):
    label: str = Field(description="image_generation or conversation")
    confidence: float = Field(description="The probability of that label, 0–1.")
    scores: dict[str, float] = Field(description="Every label's probability.")
    threshold: float = Field(description="image_generation needs at least this probability.")


def checked_prompt(prompt: str) -> str:
    if not prompt.strip():
        raise APIError(
            400, "prompt is empty: send the text to classify", param="prompt", code="empty_prompt"
        )
    if len(prompt) > MAX_PROMPT_CHARS:
        raise APIError(
            400,
            f"prompt is {len(prompt)} characters; at most {MAX_PROMPT_CHARS} are accepted",
            param="prompt",
            code="prompt_too_long",
        )
    return prompt


@router.post("/classify", response_model=ClassifyResponse)
async def classify(body: ClassifyRequest, request: Request) -> ClassifyResponse:
    """Is the prompt a request for a picture (`image_generation`) or for words
    (`conversation`)? The chat routes messages by this answer."""
    prompt = checked_prompt(body.prompt)
    prompt_router = await run_in_threadpool(request.app.state.registry.router)
    route = await run_in_threadpool(prompt_router.classify, prompt)
    return ClassifyResponse(
        label=route.label,
        confidence=route.confidence,
        scores=route.scores,
        threshold=prompt_router.threshold,
    )
