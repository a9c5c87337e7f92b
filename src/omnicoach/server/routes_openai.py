"""OpenAI-compatible routes: /v1/chat/completions, /v1/models, /v1/embeddings."""

import base64
import json
import time
import uuid
from collections.abc import AsyncIterator

from fastapi import APIRouter, Request
from fastapi.responses import StreamingResponse
from starlette.concurrency import run_in_threadpool

from omnicoach.assistant import Answering, Done, Notice, Pictures, Routed, Sources, TextDelta, Usage
from omnicoach.server.auth import CurrentUser
from omnicoach.server.chat_request import turn_request
from omnicoach.server.errors import APIError, error_body
from omnicoach.server.openai_schemas import ChatCompletionRequest, EmbeddingRequest

router = APIRouter(prefix="/v1", tags=["OpenAI-compatible"])


@router.get("/models")
def list_models(request: Request) -> dict:
    registry = request.app.state.registry
    return {"object": "list", "data": [_model_card(registry, spec) for spec in registry.specs()]}


@router.get("/models/{model_id}")
def get_model(model_id: str, request: Request) -> dict:
    registry = request.app.state.registry
    return _model_card(registry, registry.spec(model_id))


def _model_card(registry, spec) -> dict:
    return {
        "id": spec.name,
        "object": "model",
        "created": 0,
        "owned_by": "omnicoach",
        # Extensions: what the model is for and whether it is in memory.
        "role": spec.role,
        "licence": spec.licence,
        "loaded": registry.is_loaded(spec.name),
    }


@router.post(
    "/chat/completions",
    responses={200: {"content": {"text/event-stream": {}}}},  # with "stream": true
)
async def chat_completions(body: ChatCompletionRequest, request: Request, user: CurrentUser):
    """The assistant's answer (assistant/): this route only turns the body into a turn and the
    turn's events into OpenAI's JSON or event stream."""
    _refuse_unsupported(body)
    state = request.app.state
    turn = state.assistant.turn(turn_request(body, user, state.settings))
    # A server that would refuse the generation refuses now, before transcribing, routing and
    # retrieval spend time on an answer that will not be made.
    state.runner.refuse_if_full()
    stream = state.runner.start(turn)
    head = await stream.head()  # a failure before the answer starts is this response's status
    answering = head[-1]
    completion_id = f"chatcmpl-{uuid.uuid4().hex}"
    created = int(time.time())
    extra = _extensions(head, f"{request.base_url}v1/files")
    if body.stream:
        include_usage = bool(body.stream_options and body.stream_options.include_usage)
        events = _sse_chunks(stream, completion_id, created, answering.model, include_usage, extra)
        return StreamingResponse(
            events, media_type="text/event-stream", headers={"Cache-Control": "no-cache"}
        )
    parts, usage, finish_reason = [], None, "stop"
    async for event in stream:
        if isinstance(event, TextDelta):
            parts.append(event.text)
        elif isinstance(event, Usage):
            usage = event
        elif isinstance(event, Done):
            finish_reason = event.finish_reason
    return {
        "id": completion_id,
        "object": "chat.completion",
        "created": created,
        "model": answering.model,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": "".join(parts)},
                "finish_reason": finish_reason,
            }
        ],
        "usage": _usage(usage),
        **extra,
    }


def _extensions(head: list, files_url: str) -> dict:
    """What omnicoach adds to OpenAI's response: the conversation an answer belongs to, where
    the router sent the message, the sources [1], [2]… refer to, the pictures drawn for it,
    and warnings (a doubtful transcript, a link that could not be read)."""
    extra: dict = {}
    warnings = []
    for event in head:
        if isinstance(event, Answering) and event.conversation_id is not None:
            extra["conversation_id"] = event.conversation_id
        elif isinstance(event, Routed):
            extra["route"] = {"label": event.label, "confidence": round(event.confidence, 4)}
        elif isinstance(event, Sources):
            extra["sources"] = event.items
        elif isinstance(event, Pictures):
            extra["images"] = [
                {"file_id": i, "url": f"{files_url}/{i}/content"} for i in event.file_ids
            ]
        elif isinstance(event, Notice):
            warnings.append(event.text)
    if warnings:
        extra["warnings"] = warnings
    return extra


async def _sse_chunks(
    stream, completion_id, created, model, include_usage, extra
) -> AsyncIterator[str]:
    def event(body: dict) -> str:
        return f"data: {json.dumps(body)}\n\n"

    def chunk(choices: list, **more) -> str:
        envelope = {"id": completion_id, "object": "chat.completion.chunk", "created": created}
        return event({**envelope, "model": model, "choices": choices, **extra, **more})

    def choice(delta: dict, finish_reason=None) -> list:
        return [{"index": 0, "delta": delta, "finish_reason": finish_reason}]

    yield chunk(choice({"role": "assistant", "content": ""}))
    usage = None
    try:
        async for item in stream:
            if isinstance(item, TextDelta):
                yield chunk(choice({"content": item.text}))
            elif isinstance(item, Usage):
                usage = item
            elif isinstance(item, Done):
                yield chunk(choice({}, item.finish_reason))
    except Exception as exc:  # headers are sent: report in-band, as OpenAI does
        yield event(error_body(f"generation failed: {exc}", "server_error"))
        return
    if include_usage:
        yield chunk([], usage=_usage(usage))
    yield "data: [DONE]\n\n"


def _usage(usage: Usage | None) -> dict:
    prompt, completion = (usage.prompt_tokens, usage.completion_tokens) if usage else (0, 0)
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
    }


def _refuse_unsupported(body: ChatCompletionRequest) -> None:
    if body.n > 1:
        raise APIError(400, "n > 1 is not supported: ask for one choice per request", param="n")
    if body.tools:
        raise APIError(400, "tools (function calling) are not supported", param="tools")
    if body.logprobs:
        raise APIError(400, "logprobs are not supported", param="logprobs")


@router.post("/embeddings")
async def embeddings(body: EmbeddingRequest, request: Request) -> dict:
    registry = request.app.state.registry
    embedder = await run_in_threadpool(registry.embedder, body.model)
    texts = [body.input] if isinstance(body.input, str) else body.input
    if not texts or not all(isinstance(t, str) for t in texts):
        raise APIError(
            400,
            "input must be a string or a non-empty list of strings (token arrays unsupported)",
            param="input",
        )
    if any(not t for t in texts):
        raise APIError(400, "input strings must not be empty", param="input")
    if body.dimensions is not None and body.dimensions != embedder.dimension:
        raise APIError(
            400,
            f"{embedder.name} has {embedder.dimension} dimensions; other sizes are not supported",
            param="dimensions",
        )
    vectors = await run_in_threadpool(embedder.embed, texts)
    tokens = sum(len(ids) for ids in embedder.model.tokenizer(texts)["input_ids"])
    data = []
    for i, vector in enumerate(vectors):
        value = (
            base64.b64encode(vector.tobytes()).decode()
            if body.encoding_format == "base64"
            else vector.tolist()
        )
        data.append({"object": "embedding", "index": i, "embedding": value})
    return {
        "object": "list",
        "data": data,
        "model": embedder.name,
        "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
    }
