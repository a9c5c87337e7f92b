"""The knowledge base (data/kb/exercises/*.json, schema in data/kb/schema.json) as passages.

Each exercise becomes six passages per language, one per aspect (what it is and the muscles
it works, steps, common mistakes, cautions, beginner modification, benefits), each headed by
the exercise's name: a grounded answer cites the passage that holds each of its facts, and a
generated one gets the aspect it needs in a prompt a 135M model handles.
"""

import json
import re
from dataclasses import dataclass
from pathlib import Path

from omnicoach.config import REPO
from omnicoach.errors import ModelFileError

KB_DIR = REPO / "data" / "kb"
LANGUAGES = ("en", "bn")
LABELS = {
    "en": {
        "muscles": "Works",
        "also": "also",
        "steps": "How to do it",
        "mistakes": "Common mistakes",
        "cautions": "Cautions",
        "beginner": "Beginner modification",
        "benefits": "Benefits",
    },
    "bn": {
        "muscles": "কাজ করে",
        "also": "এছাড়া",
        "steps": "কীভাবে করবেন",
        "mistakes": "সাধারণ ভুল",
        "cautions": "সতর্কতা",
        "beginner": "নতুনদের জন্য",
        "benefits": "উপকারিতা",
    },
}


@dataclass(frozen=True)
class Passage:
    id: str  # "kb:warrior-ii:en:steps", or a link's "url#chunk"
    title: str
    text: str
    lang: str
    source: str  # where it comes from, for people: "knowledge base" or the page's URL
    # The names a question may call it by (lowercase): a question naming it ranks it first.
    names: tuple[str, ...] = ()


def load_entries(directory: Path = KB_DIR) -> list[dict]:
    files = sorted(Path(directory, "exercises").glob("*.json"))
    if not files:
        raise ModelFileError(f"no knowledge base at {directory} (exercises/*.json)")
    return [json.loads(f.read_text(encoding="utf-8")) for f in files]


def passages(entry: dict, lang: str, vocabulary: dict) -> list[Passage]:
    """The exercise's passages in LANG, one per aspect: what it is and works, the steps, common
    mistakes, cautions, the beginner version, the benefits. Retrieval then brings the aspect a
    question asks about rather than the whole entry: a Bengali entry is ~1,500 tokens, too many
    for the prompt, and every prompt token delays the first answer token."""
    words = LABELS[lang]
    muscles = vocabulary.get("muscles", {}) if lang == "bn" else {}

    def named(items: list[str]) -> str:
        return ", ".join(muscles.get(m, m) for m in items)

    title = entry["name"][lang]
    if entry.get("sanskrit"):
        title += f" ({entry['sanskrit']})"
    aspects = {
        "about": f"{title}: {entry['summary'][lang]}\n{words['muscles']}: "
        f"{named(entry['primary_muscles'])}; {words['also']} {named(entry['secondary_muscles'])}.",
        "steps": " ".join(f"{i}. {step}" for i, step in enumerate(entry["steps"][lang], 1)),
        "mistakes": " ".join(entry["common_mistakes"][lang]),
        "cautions": " ".join(entry["cautions"][lang]),
        "beginner": entry["beginner_modification"][lang],
        "benefits": " ".join(entry["benefits"][lang]),
    }
    called = [entry["name"]["en"], entry["name"]["bn"], *entry.get("aliases", [])]
    if entry.get("sanskrit"):
        called.append(entry["sanskrit"])
    # "নৌকাসন (বোট পোজ)" and "Warrior II / Virabhadrasana" hold several names each.
    split = {n.strip().lower() for name in called for n in re.split(r"[()/]", name) if n.strip()}
    names = tuple(sorted(n for n in split if len(n) >= 3))
    result = []
    for aspect, body in aspects.items():
        heading = title if aspect == "about" else f"{title} — {words[aspect]}"
        text = body if aspect == "about" else f"{heading}: {body}"
        result.append(
            Passage(
                f"kb:{entry['id']}:{lang}:{aspect}", heading, text, lang, "knowledge base", names
            )
        )
    return result


def load_vocabulary(directory: Path = KB_DIR) -> dict:
    """The Bengali names of muscles and the like (vocabulary.json); empty when there is none."""
    vocabulary_file = Path(directory, "vocabulary.json")
    return json.loads(vocabulary_file.read_text()) if vocabulary_file.is_file() else {}


def knowledge_passages(directory: Path = KB_DIR) -> list[Passage]:
    vocabulary = load_vocabulary(directory)
    return all_passages(load_entries(directory), vocabulary)


def all_passages(entries: list[dict], vocabulary: dict) -> list[Passage]:
    return [p for entry in entries for lang in LANGUAGES for p in passages(entry, lang, vocabulary)]
