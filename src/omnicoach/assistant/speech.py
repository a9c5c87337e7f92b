"""Spoken questions: each Audio part of a user message becomes the text Whisper hears in it,
before anything else looks at the message. So the model answers the transcript, and a stored
conversation keeps the transcript as the user's message, never the audio. An error names the
part it came from (its `param`)."""

from collections.abc import Callable
from contextlib import AbstractContextManager

from omnicoach.assistant.request import Audio, Message, Text
from omnicoach.audio.decode import decode_audio
from omnicoach.errors import OmnicoachError


def transcribe_parts(
    messages: list[Message],
    recognizer: Callable[[], object],
    max_seconds: float,
    slot: Callable[[], AbstractContextManager],
) -> list[str]:
    """Replace each Audio part of MESSAGES' user turns with its transcript, in place; the
    transcripts' low-confidence warnings, each naming its part. RECOGNIZER() gives the
    speech-to-text model; SLOT() is held while one clip is decoded and transcribed."""
    warnings = []
    for message in messages:
        if message.role != "user":
            continue
        for j, part in enumerate(message.parts):
            if not isinstance(part, Audio):
                continue
            try:
                model = recognizer()
                with slot():
                    transcript = model.transcribe(decode_audio(part.data, max_seconds))
            except OmnicoachError as exc:
                exc.param = getattr(exc, "param", None) or part.where
                raise
            message.parts[j] = Text(transcript.text)
            if transcript.warning:
                warnings.append(f"{part.where}: {transcript.warning}")
    return warnings
