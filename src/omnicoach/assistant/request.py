"""A chat turn as the assistant takes it, whichever door it came through: typed messages
whose parts are text, pictures and spoken audio, and the settings of this one answer."""

import base64
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

from omnicoach.db.schema import LOCAL_USER_ID
from omnicoach.models.sampling import SamplingParams

AnswerMode = Literal["grounded", "generative"]


@dataclass(frozen=True)
class Text:
    text: str


@dataclass(frozen=True)
class Picture:
    """A picture the user attached: an OpenAI content part (`image_url` with a data URL or an
    uploaded file's id, or `image_file`). WHERE names it in errors ("messages[0].content[1]",
    "--image")."""

    part: Mapping
    where: str

    @classmethod
    def from_bytes(cls, data: bytes, where: str) -> "Picture":
        """A picture from an image file's bytes (any format the decoder reads)."""
        url = "data:image;base64," + base64.b64encode(data).decode()
        return cls({"type": "image_url", "image_url": {"url": url}}, where)


@dataclass(frozen=True)
class Audio:
    """A spoken question: an audio file's bytes (any format the decoder reads)."""

    data: bytes
    where: str


Part = Text | Picture | Audio


@dataclass
class Message:
    role: Literal["system", "user", "assistant"]
    parts: list[Part] = field(default_factory=list)

    @classmethod
    def text(cls, role: str, text: str) -> "Message":
        return cls(role, [Text(text)])


@dataclass
class TurnRequest:
    """One answer to give. MESSAGES: the conversation so far (or only the new turns, with a
    stored CONVERSATION_ID whose history goes before them). GROUNDING: use the knowledge base
    and links at all (None: the setting `rag`); ANSWER_MODE: who writes the facts (None: the
    setting `answer_mode`). MAX_TOKENS: the most answer tokens the client asked for (None:
    no limit of its own; a generation still stops at PARAMS.max_tokens, the server's
    default)."""

    messages: list[Message]
    user: str = LOCAL_USER_ID
    model: str | None = None
    params: SamplingParams = field(default_factory=SamplingParams)
    max_tokens: int | None = None
    conversation_id: str | None = None
    grounding: bool | None = None
    answer_mode: AnswerMode | None = None
