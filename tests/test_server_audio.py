"""The audio API on a real server, driven by the official `openai` client: transcription in
every response format, speech in every format, input_audio in chat, and every bad input."""

import base64
import io
import math
import re
import threading
import time

import av
import httpx
import numpy as np
import openai
import pytest

from tests.audio_samples import (
    GERMAN,
    SENTENCES,
    espeak,
    png,
    video_only,
    wav_bytes,
    wav_seconds,
    wer,
)
from tests.server_process import ServerProcess

pytestmark = pytest.mark.slow

CHAT = "smollm2-135m-instruct"
SENTENCE = SENTENCES[0]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    data_dir = tmp_path_factory.mktemp("audio-server")
    # One transcription at a time and none waiting: a second at once is refused (503).
    with ServerProcess(
        data_dir / "server.log",
        data_dir=data_dir,
        max_audio_seconds=20,
        max_concurrent_transcriptions=1,
        max_waiting_transcriptions=0,
    ) as process:
        process.data_dir = data_dir
        yield process


@pytest.fixture(scope="module")
def tuned_server(tmp_path_factory):
    """Speech to text by the fine-tune, whatever the default."""
    data_dir = tmp_path_factory.mktemp("tuned-audio-server")
    with ServerProcess(
        data_dir / "server.log", data_dir=data_dir, speech_to_text_model="whisper-tiny.en-yoga"
    ) as process:
        yield process


@pytest.fixture(scope="module")
def client(server):
    return openai.OpenAI(base_url=f"{server.url}/v1", api_key="unused", max_retries=0)


@pytest.fixture(scope="module")
def spoken(tmp_path_factory):
    return espeak(tmp_path_factory.mktemp("spoken") / "question.wav", SENTENCE)


def post_audio(server, data: bytes, filename="voice.wav", **fields) -> httpx.Response:
    return httpx.post(
        f"{server.url}/v1/audio/transcriptions",
        files={"file": (filename, data)},
        data={"model": "whisper-1", **fields},
        timeout=60,
    )


def test_models_lists_the_real_speech_models_not_the_aliases(client):
    roles = {m.id: m.role for m in client.models.list()}
    assert roles["whisper-tiny.en"] == "speech-to-text"
    assert roles["piper-joe-medium"] == "text-to-speech"
    assert not {"whisper-1", "tts-1", "gpt-4o-transcribe"} & set(roles)


@pytest.mark.parametrize("model", ["whisper-1", "gpt-4o-transcribe", "whisper-tiny.en"])
def test_transcription_json(client, spoken, model):
    with spoken.open("rb") as audio:
        result = client.audio.transcriptions.create(model=model, file=audio)
    assert wer(SENTENCE, result.text) <= 0.25
    # Billed by the started second, as OpenAI does.
    assert result.usage.seconds == math.ceil(wav_seconds(spoken))
    assert getattr(result, "warning", None) is None


def test_transcription_text_srt_and_vtt(client, spoken):
    def create(response_format):
        with spoken.open("rb") as audio:
            return client.audio.transcriptions.create(
                model="whisper-1", file=audio, response_format=response_format
            )

    text = create("text")
    assert isinstance(text, str) and text.endswith("\n") and wer(SENTENCE, text) <= 0.25
    cue = r"(\d\d:\d\d:\d\d)[,.](\d{3}) --> (\d\d:\d\d:\d\d)[,.](\d{3})\n(.+)\n"
    srt = create("srt")
    assert re.fullmatch(r"1\n" + cue.replace("[,.]", ","), srt), srt
    vtt = create("vtt")
    assert re.fullmatch(r"WEBVTT\n\n" + cue.replace("[,.]", r"\."), vtt), vtt
    assert wer(SENTENCE, srt.splitlines()[2]) <= 0.25


def test_transcription_verbose_json_with_words(client, spoken):
    with spoken.open("rb") as audio:
        result = client.audio.transcriptions.create(
            model="whisper-1",
            file=audio,
            response_format="verbose_json",
            timestamp_granularities=["word", "segment"],
            prompt="Yoga instructions.",
            temperature=0.0,
        )
    assert result.language == "en"
    assert result.duration == pytest.approx(wav_seconds(spoken), abs=0.01)
    assert wer(SENTENCE, result.text) <= 0.25
    (segment,) = result.segments
    assert 0 <= segment.start < segment.end <= result.duration + 0.1
    assert segment.tokens and segment.avg_logprob < 0 and 0 <= segment.no_speech_prob < 0.5
    assert wer(SENTENCE, " ".join(w.word for w in result.words)) <= 0.25
    assert all(w.start <= w.end for w in result.words)


def test_german_gets_a_warning_in_json_and_as_a_header(server, tmp_path):
    german = espeak(tmp_path / "de.wav", GERMAN, "de").read_bytes()
    body = post_audio(server, german).json()
    assert body["warning"].startswith("low confidence: the speech may not be English")
    text = post_audio(server, german, response_format="text")
    assert text.headers["omnicoach-warning"] == body["warning"]


@pytest.mark.parametrize(
    ("fields", "param", "message"),
    [
        ({"language": "de"}, "language", "understands English only"),
        (
            {"response_format": "text", "timestamp_granularities[]": "word"},
            "timestamp_granularities",
            "verbose_json",
        ),  # fmt: skip
        ({"stream": "true"}, "stream", "not supported"),
    ],
)
def test_transcription_options_that_cannot_be_served(server, spoken, fields, param, message):
    response = post_audio(server, spoken.read_bytes(), **fields)
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["param"] == param and message in error["message"]


def test_unknown_transcription_model_is_404(server, spoken):
    response = post_audio(server, spoken.read_bytes(), model="whisper-large-v9")
    assert response.status_code == 404 and response.json()["error"]["code"] == "model_not_found"


def bad_inputs(spoken) -> list:
    whole = spoken.read_bytes()
    silent = wav_bytes(np.zeros(22_050, "<i2"), 22_050)
    long = wav_bytes(np.full(22_050 * 25, 100, "<i2"), 22_050)  # 25 s > the server's 20 s cap
    return [
        ("empty", b"", "empty_audio", "the audio file is empty"),
        ("png", png(), "not_audio", "its content is image/png"),
        ("text", b"Warrior two, then triangle.\n", "not_audio", "text, not audio"),
        ("video", video_only(), "no_audio_stream", "no audio stream"),
        ("truncated", whole[: len(whole) // 2], "truncated_audio", "the WAV file is truncated"),
        ("long", long, "audio_too_long", "longer than the limit of 20 seconds"),
        ("silent", silent, "no_speech", "no speech detected"),
    ]


def test_every_bad_audio_is_a_clear_400_and_nothing_is_stored(server, spoken):
    for name, data, code, message in bad_inputs(spoken):
        response = post_audio(server, data, filename="voice.wav")  # always named .wav
        assert response.status_code == 400, name
        error = response.json()["error"]
        assert (error["code"], error["param"]) == (code, "file"), name
        assert message in error["message"], (name, error["message"])
    assert httpx.get(f"{server.url}/v1/files").json()["data"] == []
    files = server.data_dir / "files"
    assert not files.exists() or not [p for p in files.rglob("*") if p.is_file()]


def decoded_seconds(data: bytes) -> tuple[str, float]:
    with av.open(io.BytesIO(data)) as container:
        stream = container.streams.audio[0]
        samples = sum(frame.samples for frame in container.decode(stream))
        return stream.codec_context.name, samples / stream.rate


@pytest.mark.parametrize(
    ("response_format", "codec"),
    [
        ("mp3", "mp3float"),
        ("opus", "opus"),
        ("aac", "aac"),
        ("flac", "flac"),
        ("wav", "pcm_s16le"),
        ("pcm", None),
    ],  # fmt: skip
)
def test_speech_in_every_format(client, response_format, codec):
    text = "Keep your back straight. Breathe out slowly as you fold forward."
    response = client.audio.speech.create(
        model="tts-1", voice="alloy", input=text, response_format=response_format
    )
    data = response.read()
    if codec is None:  # pcm: raw 16-bit samples at 24 kHz, OpenAI's
        seconds = len(data) / 2 / 24_000
        assert response.response.headers["content-type"] == "audio/pcm"
    else:
        found, seconds = decoded_seconds(data)
        assert found == codec
    assert 2.5 < seconds < 8  # 11 words, spoken at a normal pace


def test_speech_aliases_voices_and_speed(client, server):
    def seconds(**options) -> float:
        options = {"model": "tts-1", "voice": "alloy", "response_format": "wav", **options}
        data = client.audio.speech.create(input="Roll your shoulders back.", **options).read()
        return decoded_seconds(data)[1]

    normal = seconds()
    assert seconds(model="tts-1-hd", voice="nova") == pytest.approx(normal, rel=0.15)
    assert seconds(model="piper-joe-medium", voice="joe") == pytest.approx(normal, rel=0.15)
    # Piper's durations vary by ±5% between runs, and speed 2.0 takes 0.6-0.68 of the time.
    assert seconds(model="gpt-4o-mini-tts", speed=2.0) < normal * 0.8
    response = httpx.post(
        f"{server.url}/v1/audio/speech",
        json={"model": "tts-1", "voice": "nobody", "input": "Hi."},
    )
    assert response.status_code == 400 and response.json()["error"]["param"] == "voice"
    assert "'joe'" in response.json()["error"]["message"]


@pytest.mark.parametrize(
    ("changes", "status", "param", "message"),
    [
        ({"input": ""}, 400, "input", "input is empty"),
        ({"input": "   "}, 400, "input", "input is empty"),
        ({"input": "x" * 4097}, 400, "input", "4,097 characters long; the limit is 4,096"),
        ({"input": "?! ..."}, 400, "input", "nothing to speak"),
        ({"instructions": "Speak like a pirate."}, 400, "instructions", "not supported"),
        ({"stream_format": "sse"}, 400, "stream_format", "not supported"),
        ({"response_format": "ogg"}, 422, "response_format", "mp3"),
        ({"speed": 5}, 422, "speed", "4"),
        ({"model": "tts-9"}, 404, "model", "unknown text-to-speech model 'tts-9'"),
    ],
)
def test_speech_requests_that_cannot_be_served(server, changes, status, param, message):
    body = {"model": "tts-1", "voice": "alloy", "input": "Hello.", **changes}
    response = httpx.post(f"{server.url}/v1/audio/speech", json=body)
    assert response.status_code == status
    error = response.json()["error"]
    assert error["param"] == param and message in error["message"], error


def audio_part(data: bytes) -> dict:
    return {"type": "input_audio", "input_audio": {"data": base64.b64encode(data).decode()}}


def test_chat_answers_a_spoken_question_and_stores_its_transcript(client, server, spoken):
    conversation = httpx.post(f"{server.url}/conversations", json={}).json()["id"]
    transcript = client.audio.transcriptions.create(model="whisper-1", file=spoken.open("rb"))
    answer = client.chat.completions.create(
        model=CHAT,
        messages=[{"role": "user", "content": [audio_part(spoken.read_bytes())]}],
        max_tokens=12,
        temperature=0,
        extra_body={"conversation_id": conversation},
    )
    assert answer.choices[0].message.content.strip()
    stored = httpx.get(f"{server.url}/conversations/{conversation}/messages").json()["data"]
    assert [m["role"] for m in stored] == ["user", "assistant"]
    assert stored[0]["content"] == transcript.text  # the transcript, not the audio
    assert stored[1]["content"] == answer.choices[0].message.content


@pytest.mark.parametrize(
    ("question", "voice", "exercise"),
    [
        # Speakers no training clip has (data/speech_dataset.py's test accents).
        ("How do I do Trikonasana safely?", "en-gb-scotland", "triangle-pose"),
        ("What should I avoid in Bhujangasana?", "en-us-nyc", "cobra-pose"),
        ("Which muscles are used in Utkatasana?", "en-gb-x-gbclan", "chair-pose"),
        ("Teach me the Romanian Deadlift.", "en-gb-scotland", "romanian-deadlift"),
    ],
)
def test_a_spoken_question_naming_an_exercise_gets_its_grounded_answer(
    tuned_server, tmp_path, question, voice, exercise
):
    server = tuned_server
    clip = espeak(tmp_path / "question.wav", question, voice)
    body = {
        "model": "smollm2-135m-yoga",
        "messages": [{"role": "user", "content": [audio_part(clip.read_bytes())]}],
        "temperature": 0,
    }
    response = httpx.post(f"{server.url}/v1/chat/completions", json=body, timeout=120)
    assert response.status_code == 200, response.text
    sources = {source["id"].split(":")[1] for source in response.json()["sources"]}
    assert sources == {exercise}, response.json()["choices"][0]["message"]["content"]


def test_chat_with_a_spoken_question_and_text_streams(client, spoken):
    content = [{"type": "text", "text": "Answer briefly."}, audio_part(spoken.read_bytes())]
    stream = client.chat.completions.create(
        model=CHAT,
        messages=[{"role": "user", "content": content}],
        max_tokens=8,
        temperature=0,
        stream=True,
    )
    assert "".join(chunk.choices[0].delta.content or "" for chunk in stream if chunk.choices)


def test_chat_with_bad_audio_is_a_400_and_stores_nothing(server, spoken):
    conversation = httpx.post(f"{server.url}/conversations", json={}).json()["id"]
    for name, data, code, message in bad_inputs(spoken):
        body = {
            "model": CHAT,
            "conversation_id": conversation,
            "messages": [{"role": "user", "content": [audio_part(data)]}],
        }
        response = httpx.post(f"{server.url}/v1/chat/completions", json=body, timeout=60)
        assert response.status_code == 400, name
        error = response.json()["error"]
        assert (error["code"], error["param"]) == (code, "messages[0].content[0]"), name
        assert message in error["message"]
    not_base64 = {"type": "input_audio", "input_audio": {"data": "data:audio/wav;base64,AAAA"}}
    body["messages"][0]["content"] = [not_base64]
    response = httpx.post(f"{server.url}/v1/chat/completions", json=body)
    assert response.status_code == 400
    assert response.json()["error"]["param"] == "messages[0].content[0].input_audio.data"
    assert "not valid base64" in response.json()["error"]["message"]
    stored = httpx.get(f"{server.url}/conversations/{conversation}/messages").json()["data"]
    assert stored == []


def test_low_confidence_chat_transcript_is_flagged(server, tmp_path):
    german = espeak(tmp_path / "de.wav", GERMAN, "de").read_bytes()
    body = {
        "model": CHAT,
        "messages": [{"role": "user", "content": [audio_part(german)]}],
        "max_tokens": 4,
    }
    response = httpx.post(f"{server.url}/v1/chat/completions", json=body, timeout=60)
    assert response.status_code == 200
    (warning,) = response.json()["warnings"]
    assert warning.startswith("messages[0].content[0]: low confidence")


def test_transcriptions_past_the_line_are_refused_with_503(server, tmp_path):
    # About 15 seconds of speech keeps the one transcription slot busy for a second or more.
    long_clip = espeak(tmp_path / "long.wav", " ".join(SENTENCES[:5])).read_bytes()
    short_clip = espeak(tmp_path / "short.wav", SENTENCES[0]).read_bytes()
    results = {}

    def transcribe(name: str, clip: bytes) -> None:
        files = {"file": (f"{name}.wav", clip, "audio/wav")}
        results[name] = httpx.post(
            f"{server.url}/v1/audio/transcriptions", data={"model": "whisper-1"}, files=files,
            timeout=120,
        )  # fmt: skip

    first = threading.Thread(target=transcribe, args=("long", long_clip))
    first.start()
    deadline = time.monotonic() + 30
    while httpx.get(f"{server.url}/health").json()["transcriptions"]["running"] < 1:
        assert time.monotonic() < deadline, results
        time.sleep(0.02)
    transcribe("short", short_clip)
    first.join(120)
    assert results["short"].status_code == 503
    assert results["short"].headers["Retry-After"].isdigit()
    assert "too many transcriptions" in results["short"].json()["error"]["message"]
    assert results["long"].status_code == 200, results["long"].text
    assert "downward dog" in results["long"].json()["text"].lower()
    # The slot is free again: the same short clip is transcribed now.
    transcribe("short", short_clip)
    assert results["short"].status_code == 200
