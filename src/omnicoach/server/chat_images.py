"""Pictures in a chat: ``image_url`` content parts are decoded, kept with their message, and
the newest picture of the conversation is what the vision model looks at.

A new image starts a new visual context: only the last picture (in the request or, in a
stored conversation, in its history) goes to the model, in the message that carried it, and
the model reads the conversation from that message on (after the system prompt). The earlier
turns stay in the stored conversation and on the page, not in the vision model's prompt: with
them in view it named the earlier picture's exercise again (measured: a tree pose, named
alone, was called "Downward-Facing Dog" after a talk about downward dog). A picture in a stored
conversation is kept as a PNG file (purpose "vision") whose id the message records, so a
later turn ("how do I do it?") still sees it and the page can show it again.

With grounding on (the `rag` setting or request field), the vision model only names the
exercise and the answer's facts come from its knowledge-base entry, with the entry's passage
as the source (knowledge/picture_answers.py); `"rag": false`, a picture of no known exercise,
or a question the knowledge base does not answer get the vision model's own answer.
"""

import io

from PIL import Image
from starlette.concurrency import run_in_threadpool

from omnicoach.errors import NotFoundError
from omnicoach.images.decode import encode_png, load_image
from omnicoach.images.parts import image_from_part
from omnicoach.knowledge.grounding import source_list
from omnicoach.models.vision_language import IMAGE_MARKER
from omnicoach.server.chat_routing import FixedReply
from omnicoach.server.errors import APIError

IMAGE_PART_TYPES = ("image_url", "image_file")


async def take_pictures(body, request, user: str) -> dict[int, list[Image.Image]]:
    """Decode every image part of BODY's messages; returns the pictures by message index. A
    bad image is a 400 naming its part; nothing is stored yet."""
    found: dict[int, list[Image.Image]] = {}
    state = request.app.state
    for i, message in enumerate(body.messages):
        if not isinstance(message.content, list):
            continue
        for j, part in enumerate(message.content):
            if part.type not in IMAGE_PART_TYPES:
                continue
            where = f"messages[{i}].content[{j}]"
            if message.role != "user":
                raise APIError(400, "only user messages may carry images", param=where)
            image = await run_in_threadpool(
                image_from_part,
                part,
                where=where,
                user=user,
                db=state.db,
                files=state.files,
                max_pixels=state.settings.max_image_pixels,
                max_bytes=state.settings.max_upload_bytes,
            )
            found.setdefault(i, []).append(image)
    return found


def store_pictures(request, user: str, pictures: list[Image.Image]) -> list[str]:
    """Save PICTURES as PNG files for USER; their file ids."""
    ids = []
    for picture in pictures:
        png = io.BytesIO(encode_png(picture))
        stored = request.app.state.files.save(
            request.app.state.db, user, png, "chat-image.png", "vision"
        )
        ids.append(stored.id)
    return ids


def visual_context(
    request, user: str, messages: list[dict]
) -> tuple[list[dict], Image.Image | None]:
    """The system messages and the messages from the one holding the newest picture on, with
    IMAGE_MARKER at the start of that message, and that picture; (MESSAGES, None) when no
    message has one. A message holds decoded "pictures" (this request) or stored
    "image_files" (the history)."""
    for index in range(len(messages) - 1, -1, -1):
        message = messages[index]
        if message.get("pictures"):
            image = message["pictures"][-1]
        elif message.get("image_files"):
            image = _stored_image(request, user, message["image_files"][-1])
            if image is None:
                continue
        else:
            continue
        system = [dict(m) for m in messages[:index] if m["role"] == "system"]
        current = [dict(m) for m in messages[index:]]
        current[0]["content"] = f"{IMAGE_MARKER}\n{message['content']}".rstrip()
        return system + current, image
    return messages, None


def _stored_image(request, user: str, file_id: str) -> Image.Image | None:
    """The stored picture, or None when the user has deleted its file since: the
    conversation goes on, from the picture before it or without one."""
    state = request.app.state
    try:
        stored = state.files.get(state.db, user, file_id)
        return load_image(state.files.path(stored).read_bytes())
    except (NotFoundError, FileNotFoundError):
        return None


async def picture_answer(
    request, messages: list[dict], picture: Image.Image, max_tokens: int
) -> tuple[FixedReply, list[dict]] | None:
    """(the knowledge base's answer, its sources) to the question about PICTURE, or None when
    the vision model has to answer on its own. Naming the exercise is a (short) generation, so
    it takes a place in the runner like any other. The answer keeps to MAX_TOKENS, as a
    generated one does (finish_reason "length" when cut)."""
    registry, runner = request.app.state.registry, request.app.state.runner
    answers = await run_in_threadpool(registry.picture_answers)
    async with runner.slot():
        answer = await run_in_threadpool(answers.answer, messages, picture)
    if answer is None:
        return None
    tokenizer = answers.vision.llm.tokenizer
    ids = tokenizer(answer.text, add_special_tokens=False)["input_ids"]
    cut = len(ids) > max_tokens
    reply = FixedReply(
        tokenizer.decode(ids[:max_tokens]) if cut else answer.text,
        finish_reason="length" if cut else "stop",
        prompt_tokens=sum(answers.vision.llm.count_tokens(m["content"]) for m in messages),
        completion_tokens=min(len(ids), max_tokens),
    )
    return reply, source_list(answer.sources)
