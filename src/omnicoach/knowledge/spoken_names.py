"""The knowledge base's exercise names for the speech recogniser: the words it is told to
expect (Whisper's hotwords), so that "Adho Mukha Svanasana" is heard as a name and not as
"that for all my cosmetics on it".

Whisper reads hotwords as if they were the text before the clip, and keeps at most half its
context (223 tokens for the bundled tiny.en) of them; the rest is cut. Every Sanskrit name and
English name together is ~680 tokens, so the vocabulary is compact: each distinct word of the
Sanskrit names once ("Adho Mukha Svanasana Urdhva …": 60 words, 213 tokens), then as many of
the English names' unusual words (ones Whisper's vocabulary splits: "Burpee", "Kettlebell")
as fit.
"""

import re

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
