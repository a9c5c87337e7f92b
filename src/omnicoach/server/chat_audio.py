"""Spoken questions in a chat: ``input_audio`` content parts become text before the chat
engine sees them.

Each part (``{"type": "input_audio", "input_audio": {"data": <base64>, "format": "wav"}}``)
in a user message is decoded and transcribed with the default speech-to-text model and
replaced by a text part holding the transcript. So the model answers the transcript, and a
conversation stores the transcript as the user's message, never the audio. ``format`` is
informational: the content decides how the audio is decoded.
"""

import base64
import binascii

from fastapi import Request
from starlette.concurrency import run_in_threadpool

from omnicoach.audio.decode import decode_audio
from omnicoach.errors import OmnicoachError
from omnicoach.server.errors import APIError, from_domain_error
from omnicoach.server.openai_schemas import ChatCompletionRequest, ContentPart


async def transcribe_audio_parts(body: ChatCompletionRequest, request: Request) -> list[str]:
    """Replace every input_audio part of BODY's user messages with its transcript, in place;
    returns the transcripts' low-confidence warnings, each naming its part."""
    warnings = []
    for i, message in enumerate(body.messages):
        if message.role != "user" or not isinstance(message.content, list):
            continue  # audio in other roles is refused later, as any unsupported part is
        for j, part in enumerate(message.content):
            if part.type != "input_audio":
                continue
            where = f"messages[{i}].content[{j}]"
            data = _audio_bytes(part, where)
            registry = request.app.state.registry
            max_seconds = request.app.state.settings.max_audio_seconds
            try:
                recognizer = await run_in_threadpool(registry.speech_to_text)
                async with request.app.state.transcriptions.slot():  # 503 when too many wait
                    samples = await run_in_threadpool(decode_audio, data, max_seconds)
                    transcript = await run_in_threadpool(recognizer.transcribe, samples)
            except OmnicoachError as exc:
                raise from_domain_error(exc, param=where) from exc
            message.content[j] = ContentPart(type="text", text=transcript.text)
            if transcript.warning:
                warnings.append(f"{where}: {transcript.warning}")
    return warnings


def _audio_bytes(part: ContentPart, where: str) -> bytes:
    audio = getattr(part, "input_audio", None)
    if not isinstance(audio, dict) or not isinstance(audio.get("data"), str):
        raise APIError(
            400,
            'an input_audio part needs "input_audio": {"data": <base64 audio>, "format": ...}',
            param=f"{where}.input_audio",
            code="invalid_input_audio",
        )
    try:
        return base64.b64decode(audio["data"], validate=True)
    except (binascii.Error, ValueError):
        raise APIError(
            400,
            "input_audio.data is not valid base64: send the audio file's bytes base64-encoded, "
            "without a data: URL prefix",
            param=f"{where}.input_audio.data",
            code="invalid_input_audio",
        ) from None
