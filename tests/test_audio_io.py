"""Audio in (decode and check what users send) and out (encode synthesised speech), on real
files made at test time with espeak-ng and PyAV."""

import io
import struct

import av
import numpy as np
import pytest

from omnicoach.audio.decode import SAMPLE_RATE, AudioInputError, decode_audio
from omnicoach.audio.encode import FORMATS, PCM_SAMPLE_RATE, encoder
from tests.audio_samples import espeak, png, video_only, wav_seconds, write_wav

RATE = 22_050


@pytest.fixture(scope="module")
def spoken(tmp_path_factory):
    """A short English sentence from espeak-ng, as a WAV file."""
    return espeak(tmp_path_factory.mktemp("audio") / "spoken.wav", "Hold the plank and breathe.")


def tone(seconds: float, rate: int = RATE, amplitude: float = 0.3) -> np.ndarray:
    t = np.arange(int(seconds * rate)) / rate
    return (amplitude * np.sin(2 * np.pi * 220 * t)).astype(np.float32)


class Sink:
    """A write-only file: what a browser's MediaRecorder produces is not seekable either, so
    a WebM written here has no duration in its header."""

    def __init__(self):
        self.data = b""

    def write(self, chunk) -> int:
        self.data += bytes(chunk)
        return len(chunk)


def webm_opus(seconds: float) -> bytes:
    """WebM/Opus as a browser records it (streamed: no duration in the header)."""
    sink = Sink()
    with av.open(sink, mode="w", format="webm") as container:
        stream = container.add_stream("libopus", rate=48_000, layout="mono")
        frame = av.AudioFrame.from_ndarray(
            tone(seconds, 48_000)[None, :], format="flt", layout="mono"
        )
        frame.sample_rate = 48_000
        resampler = av.AudioResampler(format=stream.codec_context.format.name, layout="mono")
        for out in resampler.resample(frame) + resampler.resample(None):
            container.mux(stream.encode(out))
        container.mux(stream.encode(None))
    return sink.data


def refused(data: bytes, code: str, max_seconds: float = 300) -> str:
    with pytest.raises(AudioInputError) as caught:
        decode_audio(data, max_seconds)
    assert caught.value.code == code
    return str(caught.value)


def test_a_wav_becomes_16_khz_mono_float32(spoken):
    samples = decode_audio(spoken.read_bytes(), 300)
    assert samples.dtype == np.float32 and samples.ndim == 1
    assert len(samples) / SAMPLE_RATE == pytest.approx(wav_seconds(spoken), abs=0.02)
    assert 0.05 < np.abs(samples).max() <= 1.0


def test_stereo_44_khz_flac_is_downmixed_and_resampled():
    buffer = io.BytesIO()
    channel = (tone(1.5, 44_100) * 32767).astype(np.int16)
    interleaved = np.stack([channel, channel], axis=1).reshape(1, -1)  # packed s16: L R L R
    with av.open(buffer, mode="w", format="flac") as container:
        stream = container.add_stream("flac", rate=44_100, layout="stereo")
        frame = av.AudioFrame.from_ndarray(interleaved, format="s16", layout="stereo")
        frame.sample_rate = 44_100
        container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    samples = decode_audio(buffer.getvalue(), 300)
    assert len(samples) / SAMPLE_RATE == pytest.approx(1.5, abs=0.01)
    # FFmpeg's downmix adds the two channels at -3 dB each: 0.3 in both makes 0.3·√2.
    assert np.abs(samples).max() == pytest.approx(0.3 * 2**0.5, abs=0.02)


def test_browser_webm_without_a_duration_is_decoded_and_its_length_checked():
    recording = webm_opus(3.0)
    with av.open(io.BytesIO(recording)) as container:
        assert container.duration is None  # nothing in the header says how long it is
    assert len(decode_audio(recording, 300)) / SAMPLE_RATE == pytest.approx(3.0, abs=0.05)
    message = refused(recording, "audio_too_long", max_seconds=2)
    assert "longer than the limit of 2 seconds" in message


def test_empty_file():
    assert refused(b"", "empty_audio") == "the audio file is empty"


def test_a_png_named_wav_is_refused_by_its_content():
    assert "not audio: its content is image/png" in refused(png(), "not_audio")


def test_text_and_garbage_are_not_audio():
    assert "text, not audio" in refused(b"Downward dog, then plank.\n", "not_audio")
    garbage = bytes(np.random.default_rng(0).integers(0, 256, 4000, dtype=np.uint8))
    assert "not audio that can be decoded" in refused(b"\x00" + garbage, "not_audio")


def test_video_without_sound_has_no_audio_stream():
    assert "no audio stream (it holds video)" in refused(video_only(), "no_audio_stream")


def test_truncated_wav_names_the_sizes(spoken):
    whole = spoken.read_bytes()
    announced = struct.unpack_from("<I", whole, 40)[0]  # espeak-ng writes a 44-byte header
    message = refused(whole[: len(whole) // 2], "truncated_audio")
    assert f"announces {announced:,} bytes" in message
    assert f"only {len(whole) // 2 - 44:,} are present" in message
    assert "before its audio data begins" in refused(whole[:30], "truncated_audio")


def test_streamed_wav_of_unknown_length_is_not_truncated():
    stream = encoder("wav", RATE)
    data = stream.encode(tone(1.0)) + stream.finish()
    assert struct.unpack_from("<I", data, 40)[0] == 0xFFFFFFFF
    assert len(decode_audio(data, 300)) / SAMPLE_RATE == pytest.approx(1.0, abs=0.01)


def test_silence_is_no_speech(tmp_path):
    silent = write_wav(tmp_path / "silent.wav", np.zeros(RATE * 2, "<i2"), RATE)
    assert refused(silent.read_bytes(), "no_speech") == "no speech detected: the audio is silent"


@pytest.mark.parametrize("format_name", sorted(FORMATS))
def test_every_speech_format_streams_and_decodes(format_name):
    """Bytes come out after the first chunk already (the response streams), and the whole
    decodes to the audio that went in."""
    chunks = [tone(0.8), tone(0.5), tone(1.2)]
    stream = encoder(format_name, RATE)
    first = stream.encode(chunks[0])
    data = first + b"".join(stream.encode(c) for c in chunks[1:]) + stream.finish()
    assert first, "nothing was ready after the first sentence"
    if format_name == "pcm":  # raw 24 kHz s16le: OpenAI's pcm
        assert len(data) / 2 / PCM_SAMPLE_RATE == pytest.approx(2.5, abs=0.01)
        return
    with av.open(io.BytesIO(data)) as container:
        audio = container.streams.audio[0]
        samples = sum(frame.samples for frame in container.decode(audio))
        seconds = samples / audio.rate
    assert seconds == pytest.approx(2.5, abs=0.1)
    assert FORMATS[format_name].media_type.startswith("audio/")
