"""Word error rate of speech to text, on fitness sentences spoken at run time.

The sentences are spoken by Debian's espeak-ng (a formant synthesiser: robotic, but independent
of the models under test) and by the configured Piper voice (the round trip a voice chat makes).
The speech tests, `benchmarks/voice.py` and `omnicoach eval all --only wer` all use these.
"""

import jiwer

from omnicoach.audio.decode import AudioInputError, decode_audio
from omnicoach.data.voices import Speaker, speak, wav_bytes

# Fitness instructions without digits ("thirty" written back as "30" would count as an error).
# These 8 are heard clearly by tiny.en in espeak-ng's voice (a few words slip: "back" as "Mac").
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
# Four more, written before they were heard and kept whatever they score: the plain-English word
# error rate is measured over all twelve (PLAIN_SENTENCES), so that a figure is not made good by
# leaving out what the model hears badly. The tests hold each of SENTENCES to 25 %.
HARDER_SENTENCES = [
    "Stretch your hips gently after a long walk.",
    "Hold the plank and breathe through your nose.",
    "Lower the dumbbells slowly to your shoulders.",
    "Sit tall on the mat and cross your legs.",
]
PLAIN_SENTENCES = SENTENCES + HARDER_SENTENCES

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


# The two voices the plain sentences are said in: espeak-ng's American English and Piper's.
PLAIN_VOICES = {
    "espeak-ng": Speaker("espeak", "en-us", 175),
    "Piper": Speaker("piper", "joe", 1.0),
}


def spoken_plain_sentences(piper, sentences=PLAIN_SENTENCES) -> list[tuple[str, str, bytes]]:
    """(sentence, voice, WAV bytes) of each sentence in each of PLAIN_VOICES; PIPER is the
    loaded Piper voice."""
    clips = []
    for sentence in sentences:
        for voice, speaker in PLAIN_VOICES.items():
            samples, rate = speak(speaker, sentence, piper)
            clips.append((sentence, voice, wav_bytes(samples, rate)))
    return clips


def transcribe(recognizer, data: bytes, **options) -> str:
    """What RECOGNIZER hears in the audio file DATA; "" when it hears no speech."""
    try:
        return recognizer.transcribe(decode_audio(data, 300), **options).text
    except AudioInputError:  # "no speech detected": every word is missed
        return ""


def plain_wer(clips: list[tuple[str, str, bytes]], heard: list[str]) -> float:
    """The mean word error rate of HEARD, the transcripts of CLIPS."""
    errors = [wer(sentence, h) for (sentence, _, _), h in zip(clips, heard, strict=True)]
    return sum(errors) / len(errors)
