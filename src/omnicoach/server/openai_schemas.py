"""Request bodies of the OpenAI-compatible routes (the subset omnicoach serves).

Fields a client may send but that omnicoach does not implement are refused with 400 by the
route, never silently ignored when they would change the answer (n>1, tools, logprobs).
"""

from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationInfo, field_validator
from pydantic_core import PydanticCustomError


def _no_nul(text: str) -> str:
    # A NUL character is nothing a person types, and PostgreSQL cannot store one in a text
    # column: refused here, with the same 422 on every database, instead of failing on store.
    if "\x00" in text:
        raise PydanticCustomError("string_has_nul", "the text holds a NUL character (\\u0000)")
    return text


# Text that is stored (messages, titles): any string but one with a NUL character.
StoredText = Annotated[str, AfterValidator(_no_nul)]
# A seed is a 64-bit integer, as OpenAI documents it (torch's generators take no larger one).
Seed = Annotated[int, Field(ge=-(2**63), le=2**63 - 1)]


class ContentPart(BaseModel):
    model_config = ConfigDict(extra="allow")  # image_url / input_audio carry their own fields

    type: str
    text: str | None = None


class ChatMessage(BaseModel):
    model_config = ConfigDict(extra="allow")  # e.g. "name"

    role: Literal["system", "developer", "user", "assistant", "tool"]
    content: str | list[ContentPart] | None = None

    @field_validator("content")
    @classmethod
    def _no_nul_in_text(cls, content):
        # Checked once the union is resolved: inside it, the error would name a branch.
        for text in [content] if isinstance(content, str) else [p.text for p in content or []]:
            _no_nul(text or "")
        return content


class StreamOptions(BaseModel):
    include_usage: bool = False


class ChatCompletionRequest(BaseModel):
    model_config = ConfigDict(extra="allow")  # e.g. "user", "metadata": harmless to ignore

    model: str
    # Extension: a stored conversation (see /conversations). Its history is put before
    # `messages`, and the new user turn and the answer are appended to it. With it,
    # `messages` may hold only system messages, or none, to answer the last turn again.
    conversation_id: str | None = None
    messages: list[ChatMessage] = Field(default_factory=list, validate_default=True)
    stream: bool = False
    stream_options: StreamOptions | None = None
    max_tokens: int | None = Field(default=None, ge=1)
    max_completion_tokens: int | None = Field(default=None, ge=1)
    temperature: float | None = Field(default=None, ge=0, le=2)
    top_p: float | None = Field(default=None, gt=0, le=1)
    seed: Seed | None = None
    stop: str | list[str] | None = None
    n: int = Field(default=1, ge=1)
    frequency_penalty: float | None = Field(default=None, ge=-2, le=2)
    presence_penalty: float | None = Field(default=None, ge=-2, le=2)
    # Extension (vLLM's name): multiplicative penalty on repeated tokens, default 1.1.
    # At least 0.01: a smaller one only overflows the logits it divides (1e-300 made them inf).
    repetition_penalty: float | None = Field(default=None, ge=0.01, le=2)
    # Extension (vLLM's name): keep generating past the end of the turn, up to max_tokens
    # (benchmarks and tests that need answers of a known length).
    ignore_eos: bool = False
    # Extension: ground the answer in the knowledge base and the message's links, with
    # numbered sources (default: the server's `rag` setting).
    rag: bool | None = None
    # Extension: who writes the facts of an answer about a knowledge-base exercise: "grounded"
    # (taken from its checked entry) or "generative" (the chat model, from the entry's
    # passages as sources). Default: the server's `answer_mode` setting.
    answer_mode: Literal["grounded", "generative"] | None = None
    tools: list[Any] | None = None
    logprobs: bool | None = None

    @field_validator("messages")
    @classmethod
    def _messages_unless_in_a_conversation(cls, messages, info: ValidationInfo):
        if not messages and info.data.get("conversation_id") is None:
            raise PydanticCustomError("too_short", "at least one message is required")
        return messages

    @field_validator("stop")
    @classmethod
    def _at_most_four_stops(cls, stop):
        if isinstance(stop, list) and len(stop) > 4:
            raise ValueError(f"at most 4 stop strings are allowed, got {len(stop)}")
        return stop


class EmbeddingRequest(BaseModel):
    model_config = ConfigDict(extra="allow")

    model: str
    input: str | list[str] | list[int] | list[list[int]]
    encoding_format: Literal["float", "base64"] = "float"
    dimensions: int | None = Field(default=None, ge=1)


class SpeechRequest(BaseModel):
    """/v1/audio/speech. `instructions` and `stream_format` are declared so the route can
    refuse what Piper cannot do rather than ignore it."""

    model_config = ConfigDict(extra="allow")

    model: str
    input: str  # checked by the route: 400 when empty or over 4096 characters, as OpenAI
    voice: str
    response_format: Literal["mp3", "opus", "aac", "flac", "wav", "pcm"] = "mp3"
    speed: float = Field(default=1.0, ge=0.25, le=4.0)
    instructions: str | None = None
    stream_format: Literal["audio", "sse"] = "audio"
