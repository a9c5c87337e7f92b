"""Which exercise a text names: every name the knowledge base gives an exercise (English,
Sanskrit, Bengali with and without its gloss, aliases), matched as whole words."""

import re


def name_patterns(entries: list[dict]) -> list[tuple[str, re.Pattern]]:
    """(exercise id, pattern) for every way the knowledge base names an exercise."""
    patterns = []
    for entry in entries:
        names = {entry["name"]["en"], entry["name"]["bn"], *entry.get("aliases", [])}
        if entry.get("sanskrit"):
            names.add(entry["sanskrit"])
        names.add(short_bengali_name(entry))
        for name in names:
            if len(name) >= 3:
                pattern = re.compile(rf"(?<!\w){re.escape(name)}(?!\w)", re.IGNORECASE)
                patterns.append((entry["id"], pattern))
    return patterns


def short_bengali_name(entry: dict) -> str:
    """The Bengali name without its gloss: "নৌকাসন (বোট পোজ)" → "নৌকাসন"."""
    return entry["name"]["bn"].split(" (")[0]


def named_exercise(text: str, patterns: list[tuple[str, re.Pattern]]) -> str | None:
    """The exercise the text names first (the longest name wins at the same place)."""
    best = None
    for exercise, pattern in patterns:
        match = pattern.search(text)
        if match and (best is None or (match.start(), -len(match[0])) < best[0]):
            best = ((match.start(), -len(match[0])), exercise)
    return best[1] if best else None
