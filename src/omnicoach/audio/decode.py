"""Audio a user sends, checked and decoded into what Whisper takes: 16 kHz mono float32.

Any container and codec FFmpeg reads (through PyAV's bundled libraries: WAV, MP3, Ogg/Opus,
FLAC, AAC/M4A, and the WebM or MP4 a browser records) is accepted. Each way a file can be
unusable gets its own message and code, so a person knows what to fix; nothing here is
written to disk.
"""

import io
import struct

import av
import filetype
import numpy as np
from av.audio.resampler import AudioResampler

from omnicoach.errors import InvalidRequestError
from omnicoach.files import SNIFF_BYTES, is_text

SAMPLE_RATE = 16_000  # what Whisper was trained on
# A recording whose loudest sample is below -60 dBFS holds nothing audible: say so at once
# rather than let Whisper guess at noise.
SILENCE_PEAK = 10 ** (-60 / 20)
# A WAV written while streaming cannot know its length: it puts 0 or 0xFFFFFFFF in the size
# fields (OpenAI's streamed WAV, and ours, do). Those are not truncated.
UNKNOWN_WAV_SIZES = (0, 0xFFFFFFFF)


class AudioInputError(InvalidRequestError):
    """Audio that cannot be transcribed; ``code`` names the problem for clients."""

    def __init__(self, message: str, code: str):
        super().__init__(message)
        self.code = code


def decode_audio(data: bytes, max_seconds: float) -> np.ndarray:
    """The samples of DATA as 16 kHz mono float32; raises AudioInputError for unusable audio."""
    if not data:
        raise AudioInputError("the audio file is empty", "empty_audio")
    _refuse_other_content(data[:SNIFF_BYTES])
    _refuse_truncated_wav(data)
    samples = _decode(data, max_seconds)
    if samples.size == 0:
        raise AudioInputError("the file's audio stream holds no samples", "empty_audio")
    # A float WAV can hold NaN or infinity, which FFmpeg passes on: nothing a microphone
    # records, and one such sample makes Whisper's whole spectrogram NaN.
    if not np.isfinite(samples).all():
        raise AudioInputError(
            "the audio holds samples that are not numbers (NaN or infinity): the file is damaged",
            "undecodable_audio",
        )
    if float(np.abs(samples).max()) < SILENCE_PEAK:
        raise AudioInputError("no speech detected: the audio is silent", "no_speech")
    return samples


def _refuse_other_content(head: bytes) -> None:
    """Images, archives, documents and text are named as what they are. The type comes from
    the bytes, never the file name: a PNG called voice.wav is a PNG."""
    kind = filetype.guess(head)
    if kind is not None and not kind.mime.startswith(("audio/", "video/")):
        raise AudioInputError(
            f"the file is not audio: its content is {kind.mime}; send a recording "
            "(WAV, MP3, Ogg/Opus, FLAC, M4A or WebM)",
            "not_audio",
        )
    if kind is None and is_text(head):
        raise AudioInputError(
            "the file is text, not audio; send a recording (WAV, MP3, Ogg/Opus, FLAC, M4A or WebM)",
            "not_audio",
        )


def _refuse_truncated_wav(data: bytes) -> None:
    """FFmpeg happily decodes the first half of a cut-off WAV, and Whisper would transcribe
    half a sentence as if it were all: compare the header's data size with the bytes present."""
    if len(data) < 12 or data[:4] != b"RIFF" or data[8:12] != b"WAVE":
        return
    position = 12
    while position + 8 <= len(data):
        chunk_id = data[position : position + 4]
        (size,) = struct.unpack_from("<I", data, position + 4)
        if chunk_id == b"data":
            present = len(data) - position - 8
            if size not in UNKNOWN_WAV_SIZES and size > present:
                raise AudioInputError(
                    f"the WAV file is truncated: its header announces {size:,} bytes of audio "
                    f"but only {present:,} are present; send the complete file",
                    "truncated_audio",
                )
            return
        position += 8 + size + (size & 1)  # chunks are padded to an even length
    raise AudioInputError(
        "the WAV file is truncated: it ends before its audio data begins", "truncated_audio"
    )


def _decode(data: bytes, max_seconds: float) -> np.ndarray:
    try:
        # Tags are never used, and PyAV decodes them as strict UTF-8: an ID3 title in Latin-1
        # (common in old MP3s) raised UnicodeDecodeError.
        container = av.open(io.BytesIO(data), mode="r", metadata_errors="replace")
    except av.error.EOFError:
        # FFmpeg found a recording's header (FLAC, Ogg...) and ran out of bytes looking for
        # its audio: a file cut off, e.g. by an interrupted upload, not a file of another kind.
        raise AudioInputError(
            "the file is truncated: it ends before its audio can be read; send the complete file",
            "truncated_audio",
        ) from None
    except av.FFmpegError as exc:
        raise AudioInputError(
            f"the file is not audio that can be decoded ({_reason(exc)}); send a recording "
            "(WAV, MP3, Ogg/Opus, FLAC, M4A or WebM)",
            "not_audio",
        ) from None
    with container:
        if not container.streams.audio:
            held = sorted({stream.type for stream in container.streams}) or ["nothing"]
            raise AudioInputError(
                f"the file has no audio stream (it holds {' and '.join(held)}); send a "
                "recording with sound",
                "no_audio_stream",
            )
        # The limit is applied to decoded samples: a browser's WebM recording has no duration
        # in its header, and a header could lie. Decoding stops as soon as it is passed.
        limit = int(max_seconds * SAMPLE_RATE)
        pieces: list[np.ndarray] = []
        total = 0

        def add(frames: list[av.AudioFrame]) -> None:
            nonlocal total
            for out in frames:
                pieces.append(out.to_ndarray()[0])
                total += out.samples
            # Checked on what a flush gives too: the resampler holds back a few samples.
            if total > limit:
                raise AudioInputError(
                    f"the audio is longer than the limit of {max_seconds:g} seconds; "
                    "send a shorter recording",
                    "audio_too_long",
                )

        resampler, setup = None, None
        try:
            for frame in container.decode(container.streams.audio[0]):
                frame.pts = None  # the resampler needs no timing; gaps in it would upset it
                # A stream may change its rate or channels midway (MP3s joined with cat, a
                # damaged frame); a resampler takes one setup only (else ValueError), so a
                # new one starts at each change, after the old one gives what it holds.
                if (frame.format.name, frame.layout.name, frame.sample_rate) != setup:
                    if resampler is not None:
                        add(resampler.resample(None))
                    setup = (frame.format.name, frame.layout.name, frame.sample_rate)
                    resampler = AudioResampler(format="flt", layout="mono", rate=SAMPLE_RATE)
                add(resampler.resample(frame))
            if resampler is not None:
                add(resampler.resample(None))
        except av.FFmpegError as exc:
            raise AudioInputError(
                f"the audio could not be decoded ({_reason(exc)}): the file is damaged",
                "undecodable_audio",
            ) from None
    if not pieces:
        return np.zeros(0, dtype=np.float32)
    return np.concatenate(pieces).astype(np.float32, copy=False)


def _reason(exc: av.FFmpegError) -> str:
    """FFmpeg's own words, without the '[Errno …]' and file-name decoration."""
    return (getattr(exc, "strerror", None) or str(exc)).strip().rstrip(".")
