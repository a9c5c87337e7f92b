"""OpenAI's audio routes: /v1/audio/transcriptions (Whisper) and /v1/audio/speech (Piper).

OpenAI's model and voice names are accepted as aliases of the configured models, so existing
clients work unchanged; /v1/models lists only the real names. Decoding, transcription and
synthesis are CPU work: they run on worker threads, never on the event loop. Nothing a
request sends is stored.
"""

import math
from typing import Annotated, Literal

from fastapi import APIRouter, File, Form, Request, UploadFile
from fastapi.responses import JSONResponse, PlainTextResponse, StreamingResponse
from starlette.concurrency import run_in_threadpool

from omnicoach.audio.decode import decode_audio
from omnicoach.audio.encode import FORMATS, encoder
from omnicoach.errors import OmnicoachError
from omnicoach.models.asr import Transcript
from omnicoach.server.errors import APIError, from_domain_error
from omnicoach.server.openai_schemas import SpeechRequest

router = APIRouter(prefix="/v1/audio", tags=["OpenAI-compatible"])

# OpenAI's names, all served by the configured default model of the role.
TRANSCRIPTION_ALIASES = frozenset({"whisper-1", "gpt-4o-transcribe", "gpt-4o-mini-transcribe"})
SPEECH_ALIASES = frozenset({"tts-1", "tts-1-hd", "gpt-4o-mini-tts"})
OPENAI_VOICES = frozenset(
    {"alloy", "ash", "ballad", "coral", "echo", "fable", "onyx", "nova", "sage", "shimmer"}
    | {"verse", "marin", "cedar"}
)
MAX_SPEECH_INPUT = 4096  # characters, OpenAI's limit
# A header for the low-confidence warning where the body has no JSON to carry it.
WARNING_HEADER = "Omnicoach-Warning"

TranscriptionFormat = Literal["json", "text", "srt", "verbose_json", "vtt"]


@router.post(
    "/transcriptions",
    responses={200: {"content": {"text/plain": {}}}},  # response_format text, srt, vtt
)
async def transcriptions(
    request: Request,
    file: Annotated[UploadFile, File(description="The audio; any format FFmpeg reads.")],
    model: Annotated[str, Form()],
    language: Annotated[str | None, Form()] = None,
    prompt: Annotated[str | None, Form()] = None,
    response_format: Annotated[TranscriptionFormat, Form()] = "json",
    temperature: Annotated[float, Form(ge=0, le=1)] = 0.0,
    timestamp_granularities: Annotated[
        list[Literal["segment", "word"]] | None, Form(alias="timestamp_granularities[]")
    ] = None,
    stream: Annotated[bool, Form()] = False,
):
    if stream:
        raise APIError(
            400, "streamed transcription is not supported: leave stream unset", param="stream"
        )
    words = "word" in (timestamp_granularities or [])
    if words and response_format != "verbose_json":
        raise APIError(
            400,
            "word timestamps need response_format 'verbose_json'",
            param="timestamp_granularities",
        )
    registry = request.app.state.registry
    recognizer = await run_in_threadpool(
        registry.speech_to_text, None if model in TRANSCRIPTION_ALIASES else model
    )
    try:  # before reading the audio: a language the model cannot do fails at once
        recognizer.check_language(language)
    except OmnicoachError as exc:
        raise from_domain_error(exc, param="language") from exc
    data = await file.read()
    max_seconds = request.app.state.settings.max_audio_seconds
    try:
        async with request.app.state.transcriptions.slot():  # 503 when too many wait
            samples = await run_in_threadpool(decode_audio, data, max_seconds)
            transcript = await run_in_threadpool(
                recognizer.transcribe, samples, language, prompt, temperature, words
            )
    except OmnicoachError as exc:
        raise from_domain_error(exc, param="file") from exc
    return _transcription_response(transcript, response_format, words)


def _transcription_response(transcript: Transcript, response_format: str, words: bool):
    warning = {"warning": transcript.warning} if transcript.warning else {}
    headers = {WARNING_HEADER: transcript.warning} if transcript.warning else None
    if response_format == "text":
        return PlainTextResponse(transcript.text + "\n", headers=headers)
    if response_format in ("srt", "vtt"):
        return PlainTextResponse(_subtitles(transcript, response_format), headers=headers)
    # OpenAI bills transcription by the second of audio and reports it so.
    usage = {"type": "duration", "seconds": math.ceil(transcript.duration)}
    if response_format == "json":
        return JSONResponse({"text": transcript.text, "usage": usage, **warning})
    body = {
        "task": "transcribe",
        "language": transcript.language,  # the ISO-639-1 code ("en"); OpenAI writes "english"
        "duration": transcript.duration,
        "text": transcript.text,
        "segments": [_segment_json(s) for s in transcript.segments],
        "usage": usage,
        **warning,
    }
    if words:
        body["words"] = [
            {"word": w.word, "start": round(w.start, 3), "end": round(w.end, 3)}
            for s in transcript.segments
            for w in s.words or []
        ]
    return JSONResponse(body)


def _segment_json(segment) -> dict:
    return {
        "id": segment.id,
        "seek": segment.seek,
        "start": round(segment.start, 3),
        "end": round(segment.end, 3),
        "text": segment.text,
        "tokens": segment.tokens,
        "temperature": segment.temperature,
        "avg_logprob": round(segment.avg_logprob, 4),
        "compression_ratio": round(segment.compression_ratio, 4),
        "no_speech_prob": round(segment.no_speech_prob, 4),
    }


def _subtitles(transcript: Transcript, kind: str) -> str:
    """SubRip (numbered cues, 00:00:01,500) or WebVTT (a header, 00:00:01.500)."""
    mark = "," if kind == "srt" else "."
    cues = []
    for number, segment in enumerate(transcript.segments, start=1):
        timing = f"{_timestamp(segment.start, mark)} --> {_timestamp(segment.end, mark)}"
        counter = f"{number}\n" if kind == "srt" else ""
        cues.append(f"{counter}{timing}\n{segment.text.strip()}\n")
    header = "WEBVTT\n\n" if kind == "vtt" else ""
    return header + "\n".join(cues)


def _timestamp(seconds: float, mark: str) -> str:
    millis = round(seconds * 1000)
    hours, millis = divmod(millis, 3_600_000)
    minutes, millis = divmod(millis, 60_000)
    secs, millis = divmod(millis, 1000)
    return f"{hours:02d}:{minutes:02d}:{secs:02d}{mark}{millis:03d}"


@router.post(
    "/speech",
    response_class=StreamingResponse,  # audio only: no JSON body in the schema
    responses={200: {"content": {f.media_type: {} for f in FORMATS.values()}}},
)
async def speech(body: SpeechRequest, request: Request):
    """Speech for `input`, streamed as it is synthesised: the first sentence's audio leaves
    before the second is made."""
    if not body.input.strip():
        raise APIError(400, "input is empty: send the text to speak", param="input")
    if len(body.input) > MAX_SPEECH_INPUT:
        raise APIError(
            400,
            f"input is {len(body.input):,} characters long; the limit is {MAX_SPEECH_INPUT:,}: "
            "split the text into several requests",
            param="input",
        )
    if body.instructions:
        raise APIError(
            400,
            "instructions (a speaking style) are not supported by Piper voices; leave them out",
            param="instructions",
        )
    if body.stream_format != "audio":
        raise APIError(
            400,
            "stream_format 'sse' is not supported; use 'audio' (the body streams as it is made)",
            param="stream_format",
        )
    registry = request.app.state.registry
    synthesizer = await run_in_threadpool(
        registry.text_to_speech, None if body.model in SPEECH_ALIASES else body.model
    )
    if body.voice not in OPENAI_VOICES and body.voice != synthesizer.voice_name:
        aliases = ", ".join(sorted(OPENAI_VOICES))
        raise APIError(
            400,
            f"unknown voice {body.voice!r}: {synthesizer.name} speaks as "
            f"{synthesizer.voice_name!r}, and OpenAI's voice names ({aliases}) are accepted "
            "as aliases of it",
            param="voice",
        )
    sentences = synthesizer.synthesize(body.input, body.speed)
    # The first sentence is made before answering, so text with nothing to say (only
    # punctuation or symbols) is a clear 400 rather than an empty 200.
    first = await run_in_threadpool(next, sentences, None)
    if first is None:
        raise APIError(400, "input holds nothing to speak: send words", param="input")
    stream = encoder(body.response_format, synthesizer.sample_rate)

    def audio():  # a plain iterator: Starlette runs each step on a worker thread
        yield stream.encode(first)
        for samples in sentences:
            if chunk := stream.encode(samples):
                yield chunk
        yield stream.finish()

    return StreamingResponse(
        audio(),
        media_type=FORMATS[body.response_format].media_type,
        headers={"Cache-Control": "no-store"},
    )
