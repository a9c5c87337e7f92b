"""Spoken questions: each Audio part of a user message becomes the text Whisper hears in it,
before anything else looks at the message. So the model answers the transcript, and a stored
conversation keeps the transcript as the user's message, never the audio. An error names the
part it came from (its `param`).

A transcript that names no exercise but has words that sound like one of the knowledge base's
names ("Verapadersona") gets that name in their place (knowledge/spoken_names.py), so that the
spoken question reaches its entry as the typed one would."""

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
    correct: Callable[[str], str] = lambda text: text,
) -> list[str]:
    """Replace each Audio part of MESSAGES' user turns with its transcript, CORRECT()ed, in
    place; the transcripts' low-confidence warnings, each naming its part. RECOGNIZER() gives
    the speech-to-text model; SLOT() is held while one clip is decoded and transcribed."""
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
            message.parts[j] = Text(correct(transcript.text))
            if transcript.warning:
                warnings.append(f"{part.where}: {transcript.warning}")
    return warnings
