"""Synthetic speakers for speech data: espeak-ng (a formant synthesiser with many English
accents and variants: robotic, but independent of the models under test) and the bundled Piper
voice, plus the room and the noise a phone's microphone adds.

Used by the spoken-question dataset (data/speech_dataset.py), the word-error-rate sentences
(evaluation/speech.py), the speech tests and benchmarks/voice.py.
"""

import io
import shutil
import subprocess
import tempfile
import wave
from dataclasses import dataclass
from pathlib import Path

import numpy as np

ESPEAK = shutil.which("espeak-ng") or "/usr/bin/espeak-ng"


def wav_bytes(samples: np.ndarray, rate: int) -> bytes:
    """SAMPLES (int16, or float in [-1, 1]) as a mono 16-bit WAV file's bytes."""
    if samples.dtype != np.dtype("<i2"):
        samples = (np.clip(samples, -1, 1) * 32767).astype("<i2")
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(rate)
        out.writeframes(samples.tobytes())
    return buffer.getvalue()


def write_wav(path: Path, samples: np.ndarray, rate: int) -> Path:
    path.write_bytes(wav_bytes(samples, rate))
    return path


def read_wav(path: Path) -> tuple[np.ndarray, int]:
    """(float32 samples in [-1, 1], sample rate) of a mono 16-bit WAV file."""
    with wave.open(str(path)) as spoken:
        rate = spoken.getframerate()
        samples = np.frombuffer(spoken.readframes(spoken.getnframes()), "<i2")
    return samples.astype(np.float32) / 32768, rate


def espeak(
    path: Path, text: str, voice: str = "en-us", pad: float = 0.0, speed: int = 175, pitch: int = 50
) -> Path:
    """A 22,050 Hz 16-bit mono WAV of TEXT spoken by espeak-ng (VOICE, e.g. "en-gb+f3"; SPEED
    in words a minute; PITCH 0–99); PAD seconds of silence are added before (0.3 s) and after
    (PAD) when PAD is given."""
    if not Path(ESPEAK).exists():
        raise RuntimeError("espeak-ng is missing: `make setup` installs it (system-packages.txt)")
    command = [ESPEAK, "-v", voice, "-s", str(speed), "-p", str(pitch), "-w", str(path), text]
    subprocess.run(command, check=True)
    if pad:
        samples, rate = read_wav(path)
        before, after = np.zeros(int(rate * 0.3), np.float32), np.zeros(int(rate * pad), np.float32)
        write_wav(path, np.concatenate([before, samples, after]), rate)
    return path


@dataclass(frozen=True)
class Speaker:
    """One way of saying a sentence: an engine, its voice and how it talks."""

    engine: str  # "espeak" or "piper"
    voice: str  # espeak-ng's voice (+variant); the Piper voice's name
    speed: float  # espeak: words a minute; piper: 1.0 is the voice's own pace
    pitch: int = 50  # espeak only
    noise: float = 0.667  # piper only: how much the voice varies (its noise_scale)

    @property
    def name(self) -> str:
        if self.engine == "espeak":
            return f"espeak:{self.voice}:s{int(self.speed)}:p{self.pitch}"
        return f"piper:{self.voice}:x{self.speed:g}:n{self.noise:g}"


def speak(speaker: Speaker, text: str, piper=None) -> tuple[np.ndarray, int]:
    """(float32 samples, rate) of TEXT said by SPEAKER; PIPER is the loaded Piper voice
    (models.tts.SpeechSynthesizer) for a Piper speaker."""
    if speaker.engine == "espeak":
        with tempfile.TemporaryDirectory() as folder:
            path = Path(folder) / "spoken.wav"
            espeak(path, text, speaker.voice, speed=int(speaker.speed), pitch=speaker.pitch)
            return read_wav(path)
    from piper import SynthesisConfig  # only where Piper speaks

    config = SynthesisConfig(
        length_scale=piper.voice.config.length_scale / speaker.speed,
        noise_scale=speaker.noise,
    )
    chunks = [c.audio_float_array for c in piper.voice.synthesize(text, config)]
    return np.concatenate(chunks).astype(np.float32), piper.sample_rate


def in_a_room(samples: np.ndarray, rate: int, rng: np.random.Generator) -> np.ndarray:
    """SAMPLES as heard in a small room: convolved with a synthetic impulse response (decaying
    noise, RT60 0.15–0.5 s), mixed with the dry sound."""
    rt60 = rng.uniform(0.15, 0.5)
    length = int(rate * rt60)
    t = np.arange(length) / rate
    response = rng.standard_normal(length) * np.exp(-6.9 * t / rt60)  # −60 dB at RT60
    response[0] = 0.0
    response /= np.sqrt((response**2).sum()) + 1e-9
    wet = np.convolve(samples, response)[: len(samples)]
    mixed = samples + rng.uniform(0.2, 0.6) * wet
    return (mixed / max(1e-9, np.abs(mixed).max()) * np.abs(samples).max()).astype(np.float32)


def with_noise(samples: np.ndarray, rng: np.random.Generator, snr_db: float) -> np.ndarray:
    """SAMPLES with pink-ish background noise at SNR_DB decibels below the speech."""
    white = rng.standard_normal(len(samples) + 1)
    pinkish = np.diff(np.cumsum(white) * 0.02) + white[1:] * 0.5  # tilt towards the lows
    speech_power = float((samples**2).mean()) or 1e-9
    noise_power = float((pinkish**2).mean()) or 1e-9
    scale = np.sqrt(speech_power / noise_power / 10 ** (snr_db / 10))
    return np.clip(samples + scale * pinkish, -1, 1).astype(np.float32)
