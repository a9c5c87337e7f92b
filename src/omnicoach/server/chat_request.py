"""A /v1/chat/completions body as the assistant's TurnRequest: typed messages whose parts are
text, pictures (image_url, image_file) and spoken audio (input_audio), and the answer's
sampling settings. What cannot be taken is a 400 naming its place; nothing is decoded here
beyond base64 (the assistant decodes pictures and audio, and names the part when they fail).
"""

import base64
import binascii

from omnicoach.assistant import Audio, Message, Picture, Text, TurnRequest
from omnicoach.models.sampling import SamplingParams
from omnicoach.server.errors import APIError
from omnicoach.server.openai_schemas import ChatCompletionRequest, ChatMessage, ContentPart

IMAGE_PART_TYPES = ("image_url", "image_file")
SAMPLING_EPS = 1e-5  # vLLM's: a temperature or top_p below it means greedy decoding


def turn_request(body: ChatCompletionRequest, user: str, settings) -> TurnRequest:
    return TurnRequest(
        messages=[_message(m, i) for i, m in enumerate(body.messages)],
        user=user,
        model=body.model,
        params=sampling_params(body, settings),
        max_tokens=body.max_completion_tokens or body.max_tokens,
        conversation_id=body.conversation_id,
        grounding=body.rag,
        answer_mode=body.answer_mode,
    )


def _message(message: ChatMessage, index: int) -> Message:
    """The message's parts in order; refuses every part it cannot take rather than drop it."""
    if message.role == "tool":
        raise APIError(400, "tool messages are not supported", param=f"messages[{index}].role")
    role = "system" if message.role == "developer" else message.role
    content = message.content
    if content is None:
        raise APIError(400, "message content is missing", param=f"messages[{index}].content")
    if isinstance(content, str):
        return Message(role, [Text(content)])
    parts = []
    for j, part in enumerate(content):
        where = f"messages[{index}].content[{j}]"
        if part.type in IMAGE_PART_TYPES and role == "user":
            parts.append(Picture(part.model_dump(), where))
        elif part.type in IMAGE_PART_TYPES:
            raise APIError(400, "only user messages may carry images", param=where)
        elif part.type == "input_audio" and role == "user":
            parts.append(Audio(_audio_bytes(part, where), where))
        elif part.type == "text" and part.text is not None:
            parts.append(Text(part.text))
        else:
            raise APIError(
                400,
                f"content part type {part.type!r} is not supported; send text, image_url "
                "or input_audio parts",
                param=where,
                code="unsupported_content_part",
            )
    return Message(role, parts)


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


def sampling_params(body: ChatCompletionRequest, settings) -> SamplingParams:
    # Ranges were checked by the schema (422 naming the field); the engine checks them again.
    defaults = SamplingParams()
    stop = [body.stop] if isinstance(body.stop, str) else (body.stop or [])
    # A temperature or top_p below vLLM's epsilon asks for greedy decoding (their limit), and is
    # decoded so: in the sampler's float32 they overflow (1e-300 made every logit inf) or round
    # to 0, which fails the sampling step.
    greedy = any(v is not None and v < SAMPLING_EPS for v in (body.temperature, body.top_p))
    temperature = defaults.temperature if body.temperature is None else body.temperature
    return SamplingParams(
        max_tokens=body.max_completion_tokens or body.max_tokens or settings.default_max_tokens,
        temperature=0.0 if greedy else temperature,
        top_p=defaults.top_p if body.top_p is None else body.top_p,
        seed=body.seed,
        stop=stop,
        frequency_penalty=body.frequency_penalty or 0.0,
        presence_penalty=body.presence_penalty or 0.0,
        repetition_penalty=body.repetition_penalty or defaults.repetition_penalty,
        ignore_eos=body.ignore_eos,
    )
