"""The knowledge base's exercise names for the speech recogniser: the words it is told to
expect (Whisper's hotwords), so that "Adho Mukha Svanasana" is heard as a name and not as
"that for all my cosmetics on it".

Whisper reads hotwords as if they were the text before the clip, and keeps at most half its
context (223 tokens for the bundled tiny.en) of them; the rest is cut. Every Sanskrit name and
English name together is ~680 tokens, so the vocabulary is compact: each distinct word of the
Sanskrit names once ("Adho Mukha Svanasana Urdhva …": 60 words, 213 tokens), then as many of
the English names' unusual words (ones Whisper's vocabulary splits: "Burpee", "Kettlebell")
as fit.

``SpokenNameResolver`` works after decoding: a transcript that names no exercise is searched
for a run of words that sounds like one of the names ("Verapadersona" → "Virabhadrasana II")
— spelling and sound (Metaphone keys) compared by edit distance — and the run is replaced by
the name only above a confidence threshold, chosen so that ordinary sentences are never
"corrected" into pose names.
"""

import re
from dataclasses import dataclass

import jellyfish
from rapidfuzz import fuzz
from wordfreq import zipf_frequency

from omnicoach.knowledge.names import NUMERALS, NameIndex, entry_names, normalise

# Whisper tiny.en's hotword budget: half of its 448-token context, less the marker token.
HOTWORD_TOKENS = 223


def vocabulary(entries: list[dict], count_tokens, budget: int = HOTWORD_TOKENS) -> str:
    """The hotwords for ENTRIES: distinct words of the Sanskrit names, then of the English
    names that COUNT_TOKENS (text → Whisper tokens) splits, while they fit in BUDGET tokens."""
    sanskrit = _distinct(
        word for e in entries if e.get("sanskrit") for word in _words(e["sanskrit"])
    )
    english = _distinct(
        word
        for e in entries
        for name in (e["name"]["en"], *e.get("aliases", []))
        if name.isascii()
        for word in _words(name)
        if count_tokens(" " + word.lower()) > 1
    )
    chosen: list[str] = []
    for word in [*sanskrit, *english]:
        if count_tokens(" " + " ".join([*chosen, word])) > budget:
            continue
        chosen.append(word)
    return " ".join(chosen)


def _words(name: str) -> list[str]:
    return [w for w in re.split(r"[\s\-/()]+", name) if len(w) > 1 and not w.isupper()]


def _distinct(words) -> list[str]:
    seen: dict[str, str] = {}
    for word in words:
        seen.setdefault(word.lower(), word)
    return list(seen.values())


# The similarity (0–100, the mean of spelling and sound) from which a run of words is taken
# for a name; tuned on base-model transcripts of the training and validation speakers and on
# ordinary sentences (docs/speech.md): no ordinary sentence reached it.
RESOLVE_SCORE = 82.0
# A run of words is compared with names whose letters are within this ratio of its own.
_LENGTH_RATIO = 0.67
_MAX_WORDS = 6
_MIN_LETTERS = 6  # shorter runs sound like too many things
# Words at least this frequent (Zipf scale: 2 is once per 100 million words; "handstand" 2.5,
# "sauna" 3.3) are everyday English (wordfreq).
EVERYDAY_ZIPF = 2.0


@dataclass(frozen=True)
class HeardName:
    heard: str  # the transcript's words that were taken for the name
    name: str  # the knowledge base's name they sound like
    exercise: str  # its entry's id
    score: float  # 0–100


class SpokenNameResolver:
    """Finds the exercise name a transcript misheard, if it misheard one."""

    def __init__(
        self, entries: list[dict], threshold: float = RESOLVE_SCORE, index: NameIndex | None = None
    ):
        self.index = index or NameIndex(entries)
        self.threshold = threshold
        self.names = []  # (name, exercise id, letters as said, their sound)
        for entry in entries:
            for name in sorted(n for n in entry_names(entry) if n.isascii()):
                letters = _said_letters(name)
                if len(letters) >= _MIN_LETTERS:
                    self.names.append((name, entry["id"], letters, jellyfish.metaphone(letters)))

    def find(self, transcript: str) -> HeardName | None:
        """The best-sounding name in TRANSCRIPT above the threshold; None when the
        transcript already names an exercise (or an unknown one) or nothing sounds close."""
        if self.index.resolve(transcript).named:
            return None
        words = [w for w in normalise(transcript).split() if w != ","]
        best = None
        for size in range(1, _MAX_WORDS + 1):
            for start in range(len(words) - size + 1):
                run = words[start : start + size]
                letters = "".join(run)
                if len(letters) < _MIN_LETTERS or not any(map(_unusual, run)):
                    continue
                sound = jellyfish.metaphone(letters)
                for name, exercise, name_letters, name_sound in self.names:
                    if not _LENGTH_RATIO <= len(letters) / len(name_letters) <= 1 / _LENGTH_RATIO:
                        continue
                    score = (fuzz.ratio(letters, name_letters) + fuzz.ratio(sound, name_sound)) / 2
                    if score >= self.threshold and (best is None or score > best.score):
                        best = HeardName(" ".join(run), name, exercise, round(score, 1))
        return best

    def correct(self, transcript: str) -> tuple[str, HeardName | None]:
        """TRANSCRIPT with a misheard name replaced by the knowledge base's, and what was
        replaced (None: the transcript is returned as it was)."""
        heard = self.find(transcript)
        if heard is None:
            return transcript, None
        # The heard words as the transcript wrote them, with its punctuation between them.
        pattern = r"[\W_]*".join(re.escape(word) for word in heard.heard.split())
        corrected, count = re.subn(pattern, heard.name, transcript, count=1, flags=re.I)
        return (corrected, heard) if count else (transcript, None)


def _unusual(word: str) -> bool:
    """Not an everyday English word: a run of words is taken for a name only if one of its
    words is unusual ("Verapadersona"), so "full body" never becomes "Full Boat"."""
    return zipf_frequency(word, "en") < EVERYDAY_ZIPF


def _said_letters(name: str) -> str:
    """The letters of NAME as it is said: a numeral as its word ("Warrior II" → warriortwo)."""
    words = normalise(name).split()
    for forms in NUMERALS:
        if words and words[-1] in forms:
            words[-1] = forms[-1]
    return re.sub(r"[^a-z]", "", "".join(words))
