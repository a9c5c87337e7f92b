"""Audio made at test time: speech from Debian's espeak-ng (omnicoach.data.voices), word error
rate and its sentences (omnicoach.evaluation.speech, which the evaluation report uses too), and
files that are not speech."""

import io
import struct
import wave
import zlib
from pathlib import Path

import av
import numpy as np

from omnicoach.data.voices import ESPEAK, espeak, wav_bytes, write_wav
from omnicoach.evaluation.speech import SENTENCES, wer

# Not English: tiny.en answers these with fluent English nonsense.
GERMAN = "Halte den Rücken gerade und atme tief ein."
FRENCH = "Levez les bras au-dessus de la tête et détendez les épaules."

__all__ = ["ESPEAK", "FRENCH", "GERMAN", "SENTENCES", "espeak", "wav_bytes", "wer", "write_wav"]


def wav_seconds(path: Path) -> float:
    with wave.open(str(path)) as audio:
        return audio.getnframes() / audio.getframerate()


def video_only() -> bytes:
    """A WebM holding half a second of black VP8 video and no sound."""
    buffer = io.BytesIO()
    with av.open(buffer, mode="w", format="webm") as container:
        stream = container.add_stream("libvpx", rate=10)
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
        for _ in range(5):
            image = np.zeros((48, 64, 3), np.uint8)
            container.mux(stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")))
        container.mux(stream.encode(None))
    return buffer.getvalue()


def png() -> bytes:
    """A real 1×1 PNG image."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        crc = zlib.crc32(kind + body) & 0xFFFFFFFF
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", crc)

    header = struct.pack(">IIBBBBB", 1, 1, 8, 2, 0, 0, 0)
    pixels = zlib.compress(b"\x00\xff\x00\x00")
    return (
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", pixels) + chunk(b"IEND", b"")
    )
