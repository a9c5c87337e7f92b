"""Synthesised speech encoded as the formats of OpenAI's /v1/audio/speech, chunk by chunk.

An encoder takes float32 samples in [-1, 1] as each sentence is synthesised and returns the
bytes ready so far, so a response streams: the first sentence can play while the next is
being made. mp3, opus (in Ogg), aac (ADTS) and flac go through PyAV's bundled FFmpeg
encoders; wav and pcm need no codec.
"""

import struct
from dataclasses import dataclass
from typing import Protocol

import av
import numpy as np
from av.audio.resampler import AudioResampler

# OpenAI's pcm is 24 kHz signed 16-bit little-endian mono, and clients play it as such (the
# format has no header to say otherwise), so pcm is resampled to 24 kHz from the voice's own
# rate (22,050 Hz for the bundled one). Every other format carries its rate in its header.
PCM_SAMPLE_RATE = 24_000


@dataclass(frozen=True)
class AudioFormat:
    media_type: str
    container: str | None = None  # PyAV's muxer; None: raw samples (wav, pcm)
    codec: str | None = None
    rate: int | None = None  # the codec's required rate; None keeps the voice's own
    options: dict | None = None  # muxer options


FORMATS = {
    "mp3": AudioFormat("audio/mpeg", "mp3", "libmp3lame"),
    # libopus takes 48/24/16/12/8 kHz only. The Ogg muxer otherwise holds a page until a second
    # of audio has gathered; 20 ms pages let each sentence leave as soon as it is encoded.
    "opus": AudioFormat("audio/ogg", "ogg", "libopus", 24_000, {"page_duration": "20000"}),
    "aac": AudioFormat("audio/aac", "adts", "aac"),
    "flac": AudioFormat("audio/flac", "flac", "flac"),
    "wav": AudioFormat("audio/wav"),
    "pcm": AudioFormat("audio/pcm", rate=PCM_SAMPLE_RATE),
}


class StreamEncoder(Protocol):
    def encode(self, samples: np.ndarray) -> bytes:
        """Bytes ready after adding SAMPLES (float32 mono in [-1, 1]); may be empty."""

    def finish(self) -> bytes:
        """The remaining bytes; call once, after the last samples."""


def encoder(format_name: str, sample_rate: int) -> StreamEncoder:
    """An encoder of FORMAT_NAME (a key of FORMATS) for mono audio at SAMPLE_RATE."""
    spec = FORMATS[format_name]
    if format_name == "wav":
        return WavEncoder(sample_rate)
    if format_name == "pcm":
        return PcmEncoder(sample_rate, spec.rate)
    return ContainerEncoder(spec, sample_rate)


def to_int16(samples: np.ndarray) -> np.ndarray:
    return (np.clip(samples, -1.0, 1.0) * 32767).astype("<i2")


class WavEncoder:
    """16-bit PCM WAV whose header says "length unknown" (0xFFFFFFFF), as OpenAI's streamed
    WAV does: the header leaves before the length is known. Players read to the end."""

    def __init__(self, sample_rate: int):
        self.sample_rate = sample_rate
        self.header_sent = False

    def _header(self) -> bytes:
        unknown = 0xFFFFFFFF
        fmt = struct.pack("<HHIIHH", 1, 1, self.sample_rate, self.sample_rate * 2, 2, 16)
        return (
            b"RIFF" + struct.pack("<I", unknown) + b"WAVE"
            + b"fmt " + struct.pack("<I", len(fmt)) + fmt
            + b"data" + struct.pack("<I", unknown)
        )  # fmt: skip

    def encode(self, samples: np.ndarray) -> bytes:
        head = b"" if self.header_sent else self._header()
        self.header_sent = True
        return head + to_int16(samples).tobytes()

    def finish(self) -> bytes:
        return b"" if self.header_sent else self._header()


class _Resampled:
    """Float32 mono at one rate → another format and rate, keeping state across chunks so
    sentence boundaries leave no clicks."""

    def __init__(self, sample_rate: int, out_format: str, out_rate: int):
        self.sample_rate = sample_rate
        self.resampler = AudioResampler(format=out_format, layout="mono", rate=out_rate)

    def frames(self, samples: np.ndarray | None) -> list[av.AudioFrame]:
        if samples is None:
            return self.resampler.resample(None)
        frame = av.AudioFrame.from_ndarray(
            np.ascontiguousarray(samples, dtype=np.float32)[None, :], format="flt", layout="mono"
        )
        frame.sample_rate = self.sample_rate
        return self.resampler.resample(frame)


class PcmEncoder:
    """Raw signed 16-bit little-endian mono at PCM_SAMPLE_RATE: OpenAI's pcm."""

    def __init__(self, sample_rate: int, out_rate: int):
        self.resampled = _Resampled(sample_rate, "s16", out_rate)

    def _bytes(self, samples: np.ndarray | None) -> bytes:
        frames = self.resampled.frames(samples)
        return b"".join(frame.to_ndarray()[0].astype("<i2").tobytes() for frame in frames)

    def encode(self, samples: np.ndarray) -> bytes:
        return self._bytes(samples)

    def finish(self) -> bytes:
        return self._bytes(None)


class _Sink:
    """Where the muxer writes. It has no seek(), so muxers write a streamable file (no going
    back to patch lengths into a header) and hand over bytes as they are written."""

    def __init__(self):
        self.parts: list[bytes] = []

    def write(self, data) -> int:
        self.parts.append(bytes(data))
        return len(data)

    def take(self) -> bytes:
        out, self.parts = b"".join(self.parts), []
        return out


class ContainerEncoder:
    """A codec in a container (mp3, Ogg/Opus, ADTS/AAC, FLAC) through PyAV."""

    def __init__(self, spec: AudioFormat, sample_rate: int):
        rate = spec.rate or sample_rate
        self.sink = _Sink()
        self.container = av.open(self.sink, mode="w", format=spec.container, options=spec.options)
        self.stream = self.container.add_stream(spec.codec, rate=rate, layout="mono")
        # Each codec wants its own sample format (s16, s32p, fltp…); the resampler converts.
        sample_format = self.stream.codec_context.format.name
        self.resampled = _Resampled(sample_rate, sample_format, rate)

    def _mux(self, frames) -> None:
        for frame in frames:
            for packet in self.stream.encode(frame):
                self.container.mux(packet)

    def encode(self, samples: np.ndarray) -> bytes:
        self._mux(self.resampled.frames(samples))
        return self.sink.take()

    def finish(self) -> bytes:
        self._mux(self.resampled.frames(None))
        self._mux([None])  # flush the codec's delayed packets
        self.container.close()
        return self.sink.take()
