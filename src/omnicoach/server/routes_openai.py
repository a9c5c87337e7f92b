"""OpenAI-compatible routes: /v1/chat/completions, /v1/models, /v1/embeddings."""

import base64
import json
import time
import uuid
from collections.abc import AsyncIterator

from fastapi import APIRouter, Request
from fastapi.responses import StreamingResponse
from starlette.concurrency import run_in_threadpool

from omnicoach.errors import OmnicoachError
from omnicoach.models.llm import SamplingParams
from omnicoach.server.auth import CurrentUser
from omnicoach.server.chat_audio import transcribe_audio_parts
from omnicoach.server.chat_grounding import ground, wants_grounding
from omnicoach.server.chat_images import (
    IMAGE_PART_TYPES,
    picture_answer,
    store_pictures,
    take_pictures,
    visual_context,
)
from omnicoach.server.chat_routing import route_chat, routed_reply
from omnicoach.server.conversation_turns import StoredConversation
from omnicoach.server.errors import APIError, error_body, from_domain_error
from omnicoach.server.openai_schemas import ChatCompletionRequest, ChatMessage, EmbeddingRequest

router = APIRouter(prefix="/v1", tags=["OpenAI-compatible"])
SAMPLING_EPS = 1e-5  # vLLM's: a temperature or top_p below it means greedy decoding


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
    _refuse_unsupported(body)
    # A server that would refuse the generation refuses now, before transcribing, routing and
    # retrieval spend time on an answer that will not be made.
    request.app.state.runner.refuse_if_full()
    # Spoken questions become their transcripts: the engine and the stored conversation see text.
    warnings = await transcribe_audio_parts(body, request)
    pictures = await take_pictures(body, request, user)  # decoded: a bad image is a 400 here
    messages = [_plain_message(m, i) for i, m in enumerate(body.messages)]
    for index, images in pictures.items():
        messages[index]["pictures"] = images
    conversation = None
    if body.conversation_id is not None:
        conversation = StoredConversation(
            request.app.state.db,
            user,
            body.conversation_id,
            store_pictures=lambda images: store_pictures(request, user, images),
        )
        messages = await run_in_threadpool(conversation.with_history, messages)
    params = _sampling_params(body, request.app.state.settings)
    llm = await run_in_threadpool(request.app.state.registry.chat, body.model)
    messages, picture = await run_in_threadpool(visual_context, request, user, messages)
    # A message with a picture is a question about it: not routed, answered by the vision
    # model (retrieval would search the words alone: "how do I do this?" finds nothing useful).
    route = None if picture is not None else await route_chat(request, messages)
    # A picture request is drawn (or answered that drawing is not installed).
    routed = await routed_reply(request, user, route, messages[-1]["content"] if route else "")
    sources, images = [], []
    if picture is not None:
        vision = await run_in_threadpool(request.app.state.registry.vision)
        model = vision.name
        answered = None
        if wants_grounding(body, request.app.state.settings):
            answered = await picture_answer(request, messages, picture, params.max_tokens)
        if answered is not None:  # the exercise named by the model, the facts from the KB
            generation, sources = answered
            if conversation is not None:
                await run_in_threadpool(conversation.save_question)
            deltas = generation.deltas()
        else:
            try:
                generation = await run_in_threadpool(vision.stream, messages, picture, params)
            except OmnicoachError as exc:
                raise from_domain_error(exc, param="messages") from exc
            deltas = await _start(request, generation, conversation)
    elif routed is not None:
        generation, model, images = routed
        if conversation is not None:
            await run_in_threadpool(conversation.save_question)
        deltas = generation.deltas()
    else:
        if wants_grounding(body, request.app.state.settings):
            messages, sources, link_warnings = await ground(request, messages, llm.count_tokens)
            warnings += link_warnings
        model = llm.name
        try:
            generation = llm.stream(messages, params)  # validates and tokenises: errors are 400s
        except OmnicoachError as exc:
            raise from_domain_error(exc, param="messages") from exc
        deltas = await _start(request, generation, conversation)
    if conversation is not None:
        deltas = conversation.recorded(deltas, model, sources, images)
    completion_id = f"chatcmpl-{uuid.uuid4().hex}"
    created = int(time.time())
    # Extensions: answers in a conversation name it; a routed message says where it went.
    extra = {"conversation_id": conversation.id} if conversation is not None else {}
    if route is not None:
        extra["route"] = {"label": route.label, "confidence": round(route.confidence, 4)}
    if sources:  # what the answer's [1], [2]… refer to
        extra["sources"] = sources
    if images:  # the pictures drawn for it, as stored files
        base = f"{request.base_url}v1/files"
        extra["images"] = [{"file_id": i, "url": f"{base}/{i}/content"} for i in images]
    if warnings:  # Extension: a doubtful transcript, a link that could not be read.
        extra["warnings"] = warnings
    if body.stream:
        include_usage = bool(body.stream_options and body.stream_options.include_usage)
        events = _sse_chunks(
            deltas, generation, completion_id, created, model, include_usage, extra
        )
        return StreamingResponse(
            events, media_type="text/event-stream", headers={"Cache-Control": "no-cache"}
        )

    text = "".join([delta async for delta in deltas])
    return {
        "id": completion_id,
        "object": "chat.completion",
        "created": created,
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": text},
                "finish_reason": generation.finish_reason,
            }
        ],
        "usage": _usage(generation),
        **extra,
    }


async def _start(request, generation, conversation):
    """Take a place in the runner, store the question, start generating: the deltas."""
    runner = request.app.state.runner
    await runner.admit()
    try:
        # A remote LLM's answer (models/remote_llm.py) starts here: an unreachable or refusing
        # remote is this response's status, not an error inside a started stream, and a
        # question that got no answer is not stored.
        if (connect := getattr(generation, "connect", None)) is not None:
            await run_in_threadpool(connect)
        if conversation is not None:  # stored before the answer starts: it is never lost
            await run_in_threadpool(conversation.save_question)
    except BaseException:
        generation.close()
        runner.release()
        raise
    return runner.start(generation)


async def _sse_chunks(
    deltas, generation, completion_id, created, model, include_usage, extra
) -> AsyncIterator[str]:
    def event(body: dict) -> str:
        return f"data: {json.dumps(body)}\n\n"

    def chunk(choices: list, **more) -> str:
        envelope = {"id": completion_id, "object": "chat.completion.chunk", "created": created}
        return event({**envelope, "model": model, "choices": choices, **extra, **more})

    def choice(delta: dict, finish_reason=None) -> list:
        return [{"index": 0, "delta": delta, "finish_reason": finish_reason}]

    yield chunk(choice({"role": "assistant", "content": ""}))
    try:
        async for delta in deltas:
            yield chunk(choice({"content": delta}))
    except Exception as exc:  # headers are sent: report in-band, as OpenAI does
        yield event(error_body(f"generation failed: {exc}", "server_error"))
        return
    yield chunk(choice({}, generation.finish_reason))
    if include_usage:
        yield chunk([], usage=_usage(generation))
    yield "data: [DONE]\n\n"


def _usage(generation) -> dict:
    return {
        "prompt_tokens": generation.prompt_tokens,
        "completion_tokens": generation.completion_tokens,
        "total_tokens": generation.prompt_tokens + generation.completion_tokens,
    }


def _refuse_unsupported(body: ChatCompletionRequest) -> None:
    if body.n > 1:
        raise APIError(400, "n > 1 is not supported: ask for one choice per request", param="n")
    if body.tools:
        raise APIError(400, "tools (function calling) are not supported", param="tools")
    if body.logprobs:
        raise APIError(400, "logprobs are not supported", param="logprobs")


def _plain_message(message: ChatMessage, index: int) -> dict:
    """Our engine takes text: join text parts (pictures travel beside it, see chat_images),
    refuse every other part rather than drop it."""
    if message.role == "tool":
        raise APIError(400, "tool messages are not supported", param=f"messages[{index}].role")
    role = "system" if message.role == "developer" else message.role
    content = message.content
    if content is None:
        raise APIError(400, "message content is missing", param=f"messages[{index}].content")
    if isinstance(content, list):
        texts = []
        for j, part in enumerate(content):
            if part.type in IMAGE_PART_TYPES:  # decoded already (take_pictures)
                continue
            if part.type != "text" or part.text is None:
                raise APIError(
                    400,
                    f"content part type {part.type!r} is not supported; send text, image_url "
                    "or input_audio parts",
                    param=f"messages[{index}].content[{j}]",
                    code="unsupported_content_part",
                )
            texts.append(part.text)
        content = "\n".join(texts)
    return {"role": role, "content": content}


def _sampling_params(body: ChatCompletionRequest, settings) -> SamplingParams:
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
