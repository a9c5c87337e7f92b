#!/usr/bin/env python3
"""Validate the OmniCoach yoga & fitness knowledge base (data/kb).

Standard library only: the rules of schema.json are implemented directly here
(no jsonschema package), together with the cross-file rules that JSON Schema
cannot express (unique ids and names, en/bn lists of equal length, minimum
counts per kind).

Usage:
    python data/kb/validate.py [EXERCISES_DIR]

Exits 0 and prints a summary when the knowledge base is clean; otherwise lists
every problem as "<file>: <field>: <problem>" and exits 1.

From Python (e.g. a pytest test loading this file with importlib):
    problems = validate(Path("data/kb/exercises"))   # [] when clean
"""

from __future__ import annotations

import json
import re
import sys
from collections import Counter
from pathlib import Path

KB_DIR = Path(__file__).resolve().parent
SCHEMA_PATH = KB_DIR / "schema.json"
VOCABULARY_PATH = KB_DIR / "vocabulary.json"

MIN_FILES = 80
MIN_PER_KIND = 35
KINDS = ("yoga_pose", "exercise")

REQUIRED_FIELDS = (
    "id",
    "kind",
    "name",
    "sanskrit",
    "aliases",
    "category",
    "level",
    "equipment",
    "primary_muscles",
    "secondary_muscles",
    "steps",
    "common_mistakes",
    "cautions",
    "beginner_modification",
    "benefits",
    "summary",
)
# Bilingual lists: field -> (min items, max items) per language.
LIST_LIMITS = {
    "steps": (4, 8),
    "common_mistakes": (2, 4),
    "cautions": (1, 3),
    "benefits": (2, 3),
}
BILINGUAL_TEXTS = ("name", "beginner_modification", "summary")
MAX_PRIMARY = 5
MAX_SECONDARY = 8

ID_RE = re.compile(r"^[a-z0-9]+(-[a-z0-9]+)*$")
BENGALI_RE = re.compile(r"[\u0980-\u09FF]")
NUMBERED_RE = re.compile(r"^\s*(\d+|[\u09E6-\u09EF]+)\s*[.)।:-]")


def _load_vocabularies() -> tuple[dict, list[str]]:
    """Return the enums (from schema.json, checked against vocabulary.json) and any problems."""
    problems: list[str] = []
    schema = json.loads(SCHEMA_PATH.read_text(encoding="utf-8"))
    vocab = json.loads(VOCABULARY_PATH.read_text(encoding="utf-8"))
    defs = schema["$defs"]
    enums = {
        "muscles": list(defs["muscle"]["enum"]),
        "categories": list(defs["category"]["enum"]),
        "levels": list(schema["properties"]["level"]["enum"]),
        "equipment": list(defs["equipment"]["enum"]),
        "yoga_categories": list(defs["category"]["x-yoga"]),
        "exercise_categories": list(defs["category"]["x-exercise"]),
    }
    for key in ("muscles", "categories", "levels", "equipment"):
        in_schema, in_vocab = set(enums[key]), set(vocab.get(key, {}))
        for value in sorted(in_schema - in_vocab):
            problems.append(
                f"vocabulary.json: {key}: '{value}' is in schema.json but has no Bengali name"
            )
        for value in sorted(in_vocab - in_schema):
            problems.append(
                f"vocabulary.json: {key}: '{value}' is not an enum value in schema.json"
            )
        for value, bn in vocab.get(key, {}).items():
            if not isinstance(bn, str) or not BENGALI_RE.search(bn):
                problems.append(
                    f"vocabulary.json: {key}.{value}: Bengali name missing or not in Bengali script"
                )
    for key in ("yoga_categories", "exercise_categories"):
        for value in enums[key]:
            if value not in enums["categories"]:
                problems.append(
                    f"schema.json: category: '{value}' ({key}) is not in the category enum"
                )
    return enums, problems


def _check_text(text, where: str, problems: list[str], bengali: bool) -> None:
    """A non-empty, trimmed string, in Bengali script when BENGALI, without it otherwise."""
    if not isinstance(text, str):
        problems.append(f"{where}: expected a string, got {type(text).__name__}")
    elif not text.strip():
        problems.append(f"{where}: empty string")
    elif text != text.strip():
        problems.append(f"{where}: leading or trailing whitespace")
    elif bengali and not BENGALI_RE.search(text):
        problems.append(f"{where}: Bengali text contains no Bengali script (U+0980-U+09FF)")
    elif not bengali and BENGALI_RE.search(text):
        problems.append(f"{where}: English text contains Bengali script")


def _check_en(text, where: str, problems: list[str]) -> None:
    _check_text(text, where, problems, bengali=False)


def _check_bn(text, where: str, problems: list[str]) -> None:
    _check_text(text, where, problems, bengali=True)


def _check_bilingual_text(entry: dict, field: str, fname: str, problems: list[str]) -> None:
    value = entry.get(field)
    if not isinstance(value, dict):
        problems.append(f"{fname}: {field}: expected an object with 'en' and 'bn'")
        return
    for extra in sorted(set(value) - {"en", "bn"}):
        problems.append(f"{fname}: {field}.{extra}: unexpected key")
    for lang, check in (("en", _check_en), ("bn", _check_bn)):
        if lang not in value:
            problems.append(f"{fname}: {field}.{lang}: missing")
        else:
            check(value[lang], f"{fname}: {field}.{lang}", problems)


def _check_bilingual_list(entry: dict, field: str, fname: str, problems: list[str]) -> None:
    lo, hi = LIST_LIMITS[field]
    value = entry.get(field)
    if not isinstance(value, dict):
        problems.append(f"{fname}: {field}: expected an object with 'en' and 'bn' lists")
        return
    for extra in sorted(set(value) - {"en", "bn"}):
        problems.append(f"{fname}: {field}.{extra}: unexpected key")
    lengths = {}
    for lang, check in (("en", _check_en), ("bn", _check_bn)):
        items = value.get(lang)
        if not isinstance(items, list):
            problems.append(f"{fname}: {field}.{lang}: expected a list")
            continue
        lengths[lang] = len(items)
        if not lo <= len(items) <= hi:
            problems.append(f"{fname}: {field}.{lang}: {len(items)} items, expected {lo}-{hi}")
        for i, item in enumerate(items):
            where = f"{fname}: {field}.{lang}[{i}]"
            check(item, where, problems)
            if isinstance(item, str) and NUMBERED_RE.match(item):
                problems.append(
                    f"{where}: must not start with a number (lists are numbered by the reader)"
                )
        if len(set(i for i in items if isinstance(i, str))) != len(items):
            problems.append(f"{fname}: {field}.{lang}: duplicate items")
    if len(lengths) == 2 and lengths["en"] != lengths["bn"]:
        problems.append(
            f"{fname}: {field}: en has {lengths['en']} items but bn has {lengths['bn']}"
        )


def _check_enum_list(entry, field, allowed, fname, problems, min_items=0, max_items=None):
    value = entry.get(field)
    if not isinstance(value, list):
        problems.append(f"{fname}: {field}: expected a list")
        return []
    if len(value) < min_items:
        problems.append(f"{fname}: {field}: at least {min_items} item(s) required")
    if max_items is not None and len(value) > max_items:
        problems.append(f"{fname}: {field}: at most {max_items} items allowed, got {len(value)}")
    for item in value:
        if item not in allowed:
            problems.append(f"{fname}: {field}: '{item}' is not in the vocabulary")
    if len(set(map(str, value))) != len(value):
        problems.append(f"{fname}: {field}: duplicate items")
    return value


def _check_entry(entry, fname: str, enums: dict, problems: list[str]) -> None:
    if not isinstance(entry, dict):
        problems.append(f"{fname}: top level: expected a JSON object")
        return
    for field in REQUIRED_FIELDS:
        if field not in entry:
            problems.append(f"{fname}: {field}: required field missing")
    for field in sorted(set(entry) - set(REQUIRED_FIELDS)):
        problems.append(f"{fname}: {field}: unexpected field")

    entry_id = entry.get("id")
    if not isinstance(entry_id, str) or not ID_RE.match(entry_id):
        problems.append(f"{fname}: id: must be lowercase words joined by hyphens, got {entry_id!r}")
    elif entry_id + ".json" != fname:
        problems.append(f"{fname}: id: '{entry_id}' does not match the file name")

    kind = entry.get("kind")
    if kind not in KINDS:
        problems.append(f"{fname}: kind: must be one of {list(KINDS)}, got {kind!r}")

    if "name" in entry:
        _check_bilingual_text(entry, "name", fname, problems)

    if "sanskrit" in entry:
        sanskrit = entry["sanskrit"]
        if kind == "yoga_pose":
            if sanskrit is None:
                problems.append(f"{fname}: sanskrit: required (non-null) for yoga poses")
            else:
                _check_en(sanskrit, f"{fname}: sanskrit", problems)
                if isinstance(sanskrit, str) and not sanskrit.isascii():
                    problems.append(f"{fname}: sanskrit: use plain romanisation without diacritics")
        elif kind == "exercise" and sanskrit is not None:
            problems.append(f"{fname}: sanskrit: must be null for gym exercises")

    aliases = entry.get("aliases")
    if "aliases" in entry:
        if not isinstance(aliases, list):
            problems.append(f"{fname}: aliases: expected a list")
        else:
            for i, alias in enumerate(aliases):
                _check_en(alias, f"{fname}: aliases[{i}]", problems)

    category = entry.get("category")
    if "category" in entry:
        if category not in enums["categories"]:
            problems.append(f"{fname}: category: '{category}' is not in the vocabulary")
        elif kind == "yoga_pose" and category not in enums["yoga_categories"]:
            problems.append(f"{fname}: category: '{category}' is not a yoga category")
        elif kind == "exercise" and category not in enums["exercise_categories"]:
            problems.append(f"{fname}: category: '{category}' is not a gym category")

    if "level" in entry and entry["level"] not in enums["levels"]:
        problems.append(f"{fname}: level: '{entry['level']}' is not one of {enums['levels']}")

    if "equipment" in entry:
        equipment = _check_enum_list(
            entry, "equipment", enums["equipment"], fname, problems, min_items=1
        )
        if "none" in equipment and len(equipment) > 1:
            problems.append(f"{fname}: equipment: 'none' cannot be combined with other equipment")

    primary = secondary = []
    if "primary_muscles" in entry:
        primary = _check_enum_list(
            entry,
            "primary_muscles",
            enums["muscles"],
            fname,
            problems,
            min_items=1,
            max_items=MAX_PRIMARY,
        )
    if "secondary_muscles" in entry:
        secondary = _check_enum_list(
            entry, "secondary_muscles", enums["muscles"], fname, problems, max_items=MAX_SECONDARY
        )
    for muscle in sorted(set(map(str, primary)) & set(map(str, secondary))):
        problems.append(f"{fname}: secondary_muscles: '{muscle}' is already a primary muscle")

    for field in LIST_LIMITS:
        if field in entry:
            _check_bilingual_list(entry, field, fname, problems)
    for field in ("beginner_modification", "summary"):
        if field in entry:
            _check_bilingual_text(entry, field, fname, problems)


def _norm(text: str) -> str:
    return " ".join(re.sub(r"[^a-z0-9]+", " ", text.lower()).split())


def load_entries(directory: Path) -> list[tuple[str, object]]:
    """Return (file name, parsed JSON or the exception) for every *.json file, sorted."""
    entries = []
    for path in sorted(Path(directory).glob("*.json")):
        try:
            entries.append((path.name, json.loads(path.read_text(encoding="utf-8"))))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            entries.append((path.name, exc))
    return entries


def validate(directory: Path | str = KB_DIR / "exercises") -> list[str]:
    """Validate every exercise file in `directory`; return the problems found ([] when clean)."""
    directory = Path(directory)
    enums, problems = _load_vocabularies()
    if not directory.is_dir():
        return problems + [f"{directory}: not a directory"]

    entries = load_entries(directory)
    ids: dict[str, str] = {}
    english_names: dict[str, str] = {}
    kinds: Counter = Counter()
    for fname, entry in entries:
        if isinstance(entry, Exception):
            problems.append(f"{fname}: file: cannot be read as UTF-8 JSON ({entry})")
            continue
        _check_entry(entry, fname, enums, problems)
        if not isinstance(entry, dict):
            continue
        if entry.get("kind") in KINDS:
            kinds[entry["kind"]] += 1
        entry_id = entry.get("id")
        if isinstance(entry_id, str):
            if entry_id in ids:
                problems.append(f"{fname}: id: '{entry_id}' is also used by {ids[entry_id]}")
            ids.setdefault(entry_id, fname)
        # English names and aliases must identify one exercise across the whole KB.
        labels = []
        name = entry.get("name")
        if isinstance(name, dict) and isinstance(name.get("en"), str):
            labels.append(("name.en", name["en"]))
        if isinstance(entry.get("aliases"), list):
            labels += [("aliases", a) for a in entry["aliases"] if isinstance(a, str)]
        seen_here = set()
        for field, label in labels:
            key = _norm(label)
            if not key:
                continue
            if key in seen_here:
                problems.append(
                    f"{fname}: {field}: '{label}' repeats another name or alias of this file"
                )
                continue
            seen_here.add(key)
            if key in english_names and english_names[key] != fname:
                problems.append(
                    f"{fname}: {field}: '{label}' is also a name or alias in {english_names[key]}"
                )
            english_names.setdefault(key, fname)

    if len(entries) < MIN_FILES:
        problems.append(
            f"{directory}: only {len(entries)} exercise files, at least {MIN_FILES} required"
        )
    for kind in KINDS:
        if kinds[kind] < MIN_PER_KIND:
            problems.append(
                f"{directory}: only {kinds[kind]} files of kind '{kind}', "
                f"at least {MIN_PER_KIND} required"
            )
    return problems


def summary(directory: Path | str = KB_DIR / "exercises") -> str:
    """Counts per kind, category and level, as printable text."""
    per_kind: Counter = Counter()
    per_category: dict[str, Counter] = {kind: Counter() for kind in KINDS}
    per_level: Counter = Counter()
    entries = load_entries(Path(directory))
    for _, entry in entries:
        if isinstance(entry, dict) and entry.get("kind") in KINDS:
            per_kind[entry["kind"]] += 1
            per_category[entry["kind"]][str(entry.get("category"))] += 1
            per_level[str(entry.get("level"))] += 1
    lines = [f"{len(entries)} exercise files in {directory}"]
    for kind in KINDS:
        cats = ", ".join(f"{c} {n}" for c, n in sorted(per_category[kind].items()))
        lines.append(f"  {kind}: {per_kind[kind]}  ({cats})")
    lines.append("  levels: " + ", ".join(f"{lvl} {n}" for lvl, n in sorted(per_level.items())))
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    directory = Path(argv[1]) if len(argv) > 1 else KB_DIR / "exercises"
    problems = validate(directory)
    print(summary(directory))
    if problems:
        print(f"\n{len(problems)} problem(s):")
        for problem in problems:
            print(f"  {problem}")
        return 1
    print("\nOK: the knowledge base is valid.")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
