"""Speech to text: Whisper through faster-whisper (CTranslate2), int8 weights on the CPU.

The bundled model is Whisper tiny.en (DESIGN.md §1); any local CTranslate2 Whisper directory
can be configured instead, and with a multilingual one, language detection and ``language``
work. Whisper's known failure modes are dealt with here rather than passed on as text:

- On silence and noise Whisper writes stock phrases it saw in its training subtitles ("Thank
  you.", "Thanks for watching!"). The voice-activity filter (Silero VAD, bundled with
  faster-whisper) removes most non-speech first; stock phrases Whisper itself doubts are then
  dropped, and so is any segment it rates as probably not speech.
- An English-only model turns other languages into fluent English nonsense, with a low
  log-probability: such transcripts carry a warning instead of passing as confident.
"""

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from faster_whisper import WhisperModel
from faster_whisper.tokenizer import _LANGUAGE_CODES

from omnicoach.audio.decode import AudioInputError
from omnicoach.errors import InvalidRequestError, ModelFileError

# Whisper's own "no speech" probability at or above which a segment is dropped whatever it
# says (a "You" hallucinated on silence came with 0.95; clear speech is below 0.35).
NO_SPEECH_DROP = 0.8
# Below this mean log-probability per token a transcript is flagged (DESIGN.md §1). Measured
# on espeak-ng speech with tiny.en (tests/test_asr.py): English sentences -0.28 to -0.74 (one
# misheard sentence at -0.85), German, French, Italian, Dutch, Polish and Hindi -0.82 to -1.39.
LOW_CONFIDENCE_LOGPROB = -0.8
# A stock phrase is dropped only when Whisper doubts it: a clearly spoken "Thank you." scored
# no-speech 0.15 and log-probability -0.6, the hallucinated ones at least 0.36 or below -0.9.
STOCK_PHRASE_DOUBT_NO_SPEECH = 0.3
STOCK_PHRASES = re.compile(
    r"you|bye( bye)?|thanks|thank you( (very|so) much)?"
    r"|(thanks|thank you)( (very|so) much)? for watching\b.*"
    r"|(ill )?see you (in the )?next (one|video|time)\b.*"
    r"|(please )?(like and )?subscribe\b.*"
    r"|subtitles\b.*|(transcription|transcribed|captions?) by\b.*"
)
# OpenAI's temperature 0 means "start greedy, raise the temperature while the output looks
# like a failure (repetitive, improbable)": faster-whisper's fallback schedule does that.
FALLBACK_TEMPERATURES = (0.0, 0.2, 0.4, 0.6, 0.8, 1.0)


@dataclass(frozen=True)
class Word:
    start: float
    end: float
    word: str
    probability: float


@dataclass(frozen=True)
class Segment:
    id: int
    seek: int
    start: float
    end: float
    text: str
    tokens: list[int]
    temperature: float
    avg_logprob: float
    compression_ratio: float
    no_speech_prob: float
    words: list[Word] | None = None


@dataclass(frozen=True)
class Transcript:
    text: str
    language: str  # ISO-639-1 code, e.g. "en"
    duration: float  # seconds of audio received
    segments: list[Segment]
    warning: str | None = None  # set when the transcript is probably wrong


class SpeechRecognizer:
    def __init__(self, path: Path, name: str, threads: int):
        if not (path / "model.bin").is_file():
            raise ModelFileError(
                f"{path} is not a CTranslate2 Whisper directory (no model.bin); convert a "
                "Whisper checkpoint with ct2-transformers-converter, or fix the path"
            )
        try:
            # int8 weights: 4x smaller than float32 and the fastest on CPUs (DESIGN.md §1).
            self.model = WhisperModel(
                str(path), device="cpu", compute_type="int8", cpu_threads=threads
            )
        except Exception as exc:  # CTranslate2 raises RuntimeError/ValueError for bad files
            raise ModelFileError(f"cannot load the Whisper model in {path}: {exc}") from exc
        self.name = name
        self.multilingual = bool(self.model.model.is_multilingual)

    def count_tokens(self, text: str) -> int:
        """How many of Whisper's tokens TEXT takes (its prompt budget is counted in them)."""
        return len(self.model.hf_tokenizer.encode(text, add_special_tokens=False).ids)

    def check_language(self, language: str | None) -> str | None:
        """The language code to pass on (None: detect it); raises for one we cannot handle."""
        if not language:
            return None if self.multilingual else "en"
        code = language.strip().lower()
        if not self.multilingual and code != "en":
            raise InvalidRequestError(
                f"{self.name} understands English only, so it cannot transcribe language "
                f"{language!r}; leave language empty (or 'en'), or configure a multilingual "
                "Whisper model"
            )
        if code not in _LANGUAGE_CODES:
            raise InvalidRequestError(
                f"unknown language {language!r}: use an ISO-639-1 code such as 'en', 'de' or 'bn'"
            )
        return code

    def transcribe(
        self,
        audio: np.ndarray,
        language: str | None = None,
        prompt: str | None = None,
        temperature: float = 0.0,
        word_timestamps: bool = False,
        hotwords: str | None = None,
    ) -> Transcript:
        """Transcribe 16 kHz mono float32 AUDIO; HOTWORDS are words to expect (names), read
        as if said before the clip. Raises AudioInputError "no speech detected" when nothing
        but silence, noise or hallucinations is left."""
        segments, info = self.model.transcribe(
            audio,
            language=self.check_language(language),
            initial_prompt=prompt or None,
            temperature=temperature or FALLBACK_TEMPERATURES,
            vad_filter=True,
            word_timestamps=word_timestamps,
            hotwords=hotwords or None,
        )
        segments = list(segments)  # decoding happens here, segment by segment
        kept = [segment for segment in segments if not is_hallucination(segment)]
        if not kept:
            raise AudioInputError(self._no_speech(heard=bool(segments)), "no_speech")
        return Transcript(
            text="".join(segment.text for segment in kept).strip(),
            language=info.language,
            duration=round(float(info.duration), 3),
            segments=[_segment(i, segment) for i, segment in enumerate(kept)],
            warning=self._warning(kept),
        )

    def _no_speech(self, heard: bool) -> str:
        if not heard:  # the voice-activity filter found no speech at all
            return "no speech detected: the recording holds no speech"
        # Whisper wrote only what it writes over noise: the sounds were not words it knows.
        only = "" if self.multilingual else f" ({self.name} understands English only)"
        return f"no speech detected: Whisper heard sounds but could not make out words{only}"

    def _warning(self, segments) -> str | None:
        # Weighted by duration: a long confident sentence outweighs a short doubtful word.
        spans = [max(s.end - s.start, 0.01) for s in segments]
        mean = sum(s.avg_logprob * span for s, span in zip(segments, spans, strict=True))
        mean /= sum(spans)
        if mean >= LOW_CONFIDENCE_LOGPROB:
            return None
        if self.multilingual:
            return (
                "low confidence: the speech may be unclear or noisy, so the transcript is "
                "probably wrong"
            )
        return (
            f"low confidence: the speech may not be English ({self.name} understands English "
            "only) or may be unclear, so the transcript is probably wrong"
        )


def is_hallucination(segment) -> bool:
    """Whether a faster-whisper segment is Whisper talking over silence or noise."""
    words = _normalised(segment.text)
    if not words:  # punctuation only, e.g. " . ." on clicks
        return True
    if segment.no_speech_prob >= NO_SPEECH_DROP:
        return True
    doubted = (
        segment.no_speech_prob >= STOCK_PHRASE_DOUBT_NO_SPEECH
        or segment.avg_logprob < LOW_CONFIDENCE_LOGPROB
    )
    return doubted and STOCK_PHRASES.fullmatch(words) is not None


def _normalised(text: str) -> str:
    """Lower case, letters and single spaces only ("I'll" → "ill")."""
    letters = re.sub(r"[^a-z ]+", "", text.lower().replace("'", "").replace("’", ""))
    return " ".join(letters.split())


def _segment(index: int, segment) -> Segment:
    words = None
    if segment.words is not None:
        words = [Word(w.start, w.end, w.word, w.probability) for w in segment.words]
    return Segment(
        id=index,
        seek=segment.seek,
        start=segment.start,
        end=segment.end,
        text=segment.text,
        tokens=list(segment.tokens),
        temperature=segment.temperature,
        avg_logprob=segment.avg_logprob,
        compression_ratio=segment.compression_ratio,
        no_speech_prob=segment.no_speech_prob,
        words=words,
    )
