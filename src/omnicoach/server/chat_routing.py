"""Chat messages that ask for a picture go to the image generator, the rest to the chat model.

The prompt router (models/prompt_router.py) classifies the last user message. A picture
request is drawn (routes_images.draw; drawing_prompt says what is asked for) and answered
with the picture kept with the answer; where no image generator is installed, it is answered
plainly that drawing is not available, instead of letting the chat model pretend it drew
something.
"""

import functools
from collections.abc import AsyncIterator
from dataclasses import dataclass

from starlette.concurrency import run_in_threadpool

from omnicoach.errors import ModelFileError
from omnicoach.knowledge.base import load_entries
from omnicoach.knowledge.names import name_patterns, named_exercise
from omnicoach.models.image_generator import says_word
from omnicoach.models.prompt_router import IMAGE, Route
from omnicoach.server.routes_classify import MAX_PROMPT_CHARS

IMAGE_GENERATION_MISSING = (
    "That sounds like a request for a picture, but image generation is not installed in this "
    "omnicoach yet, so I can't draw it. I can describe the pose or exercise in words instead: "
    "ask me to describe or explain it."
)
ROUTER_NAME = "omnicoach-router"


@dataclass
class FixedReply:
    """A reply that is not generated: it looks like a finished generation to the response code."""

    text: str
    finish_reason: str = "stop"
    prompt_tokens: int = 0
    completion_tokens: int = 0

    async def deltas(self) -> AsyncIterator[str]:
        yield self.text


async def route_chat(request, messages: list[dict]) -> Route | None:
    """The route of the last message when it is the user's; None when routing is off."""
    if not request.app.state.settings.chat_routing or not messages:
        return None
    last = messages[-1]
    if last["role"] != "user" or not last["content"].strip():
        return None
    prompt_router = await run_in_threadpool(request.app.state.registry.router)
    return await run_in_threadpool(prompt_router.classify, last["content"][:MAX_PROMPT_CHARS])


async def routed_reply(request, user: str, route: Route | None, prompt: str):
    """(reply, model name, ids of the pictures it carries) for a route the chat model must not
    answer; None for the chat model's routes."""
    if route is None or route.label != IMAGE:
        return None
    from omnicoach.server.routes_images import draw

    try:
        generator = await run_in_threadpool(request.app.state.registry.image_generator)
    except ModelFileError:
        return FixedReply(IMAGE_GENERATION_MISSING), ROUTER_NAME, []
    # Our generator draws 64×64: the chat shows it four times larger.
    size = f"{4 * generator.native_size}x{4 * generator.native_size}"
    prompt = drawing_prompt(prompt, generator)
    drawn = await draw(request, user, prompt=prompt, size=size if generator.upscales else None)
    reply = FixedReply(f"Here is a picture for “{prompt.strip()}” (seed {drawn['seed']}).")
    return reply, drawn["model"], [image["file_id"] for image in drawn["images"]]


@functools.cache
def _exercise_names() -> tuple[dict[str, dict], list]:
    entries = load_entries()
    return {entry["id"]: entry for entry in entries}, name_patterns(entries)


def drawing_prompt(message: str, generator) -> str:
    """What to draw for a chat MESSAGE. The generator trained here knows an exercise by the
    wordings it learnt ("a person doing Warrior II"), not by whatever else a message says
    ("can you draw warrior 2 for me and say what it's good for?"), so a message naming a
    knowledge-base exercise is drawn as the generator's own wording, with any LoRA trigger
    word the message says kept. Other messages, and generators trained elsewhere, get the
    message as it is."""
    if generator.exercise_prompt is None:
        return message
    entries, patterns = _exercise_names()
    exercise = named_exercise(message, patterns)
    if exercise is None:
        return message
    asked = generator.exercise_prompt.format(name=entries[exercise]["name"]["en"])
    loras = generator.loras().values()
    return " ".join(
        [asked, *(lora["trigger"] for lora in loras if says_word(message, lora["trigger"]))]
    )
