"""The assistant: one chat turn — transcribe, look at the picture, route, draw, ground,
answer, store — as a stream of events, for every door (server, CLI, job worker)."""

from omnicoach.assistant.events import (
    Answer,
    Answering,
    Done,
    Event,
    Notice,
    Pictures,
    Routed,
    Sources,
    TextDelta,
    Usage,
    collect,
)
from omnicoach.assistant.pipeline import Assistant, Gates, Turn
from omnicoach.assistant.request import Audio, Message, Picture, Text, TurnRequest

__all__ = [
    "Answer",
    "Answering",
    "Assistant",
    "Audio",
    "Done",
    "Event",
    "Gates",
    "Message",
    "Notice",
    "Picture",
    "Pictures",
    "Routed",
    "Sources",
    "Text",
    "TextDelta",
    "Turn",
    "TurnRequest",
    "Usage",
    "collect",
]
