"""Build the prompt-router dataset from the hand-written sources.

Usage: python data/router/build.py

Reads data/router/source/*.jsonl, validates every line, drops duplicates, adds seeded typo
variants of some English prompts, splits by a hash of each prompt's group (a prompt and its typo
variant share a group) and writes train.jsonl, validation.jsonl and test.jsonl next to this file.
Standard library only; the output is byte-identical on every run.
"""

from __future__ import annotations

import hashlib
import json
import random
import sys
import unicodedata
from pathlib import Path

HERE = Path(__file__).resolve().parent
SOURCE_DIR = HERE / "source"
LABELS = ("image_generation", "conversation")
LANGS = ("en", "bn")
SPLITS = ("train", "validation", "test")
FIELDS = ("prompt", "label", "lang", "kind")

SEED = 1234
TYPO_RATE = 0.15
TRAIN_PCT = 70
VALIDATION_PCT = 15  # the remaining 15 % is test

# Words a typo never touches: a slip here could flip the meaning ("not" -> "nit").
NEVER_TYPO = {
    "no", "not", "don't", "dont", "didn't", "never", "without", "instead", "rather",
    "skip", "stop", "nope", "need", "don’t", "didn’t",
}  # fmt: skip
# Words that decide the label: a typist mistypes them, but rarely; they get a low weight.
KEY_WORDS = {
    "draw", "drawing", "sketch", "paint", "painting", "picture", "pic", "image", "img",
    "photo", "illustrate", "illustration", "render", "generate", "create", "make", "poster",
    "explain", "describe", "how", "what", "show", "visualize", "uploaded", "upload", "this",
}  # fmt: skip
KEY_WORD_WEIGHT = 0.15

# Neighbouring keys on a QWERTY keyboard, for substitution typos.
QWERTY_ROWS = ("qwertyuiop", "asdfghjkl", "zxcvbnm")
NEIGHBOURS: dict[str, str] = {}
for _r, _row in enumerate(QWERTY_ROWS):
    for _c, _ch in enumerate(_row):
        near = []
        for _dr in (-1, 0, 1):
            rr = _r + _dr
            if 0 <= rr < len(QWERTY_ROWS):
                for _dc in (-1, 0, 1):
                    cc = _c + _dc
                    if (_dr, _dc) != (0, 0) and 0 <= cc < len(QWERTY_ROWS[rr]):
                        near.append(QWERTY_ROWS[rr][cc])
        NEIGHBOURS[_ch] = "".join(near)


class SourceError(Exception):
    pass


def normalize(text: str) -> str:
    """Lowercase, drop punctuation and symbols (emoji included), collapse whitespace."""
    text = unicodedata.normalize("NFC", text).casefold()
    kept = []
    for ch in text:
        category = unicodedata.category(ch)
        if category[0] in "PSZ" or ch.isspace():
            kept.append(" ")
        elif category == "Cf":  # zero-width joiners inside emoji sequences
            continue
        else:
            kept.append(ch)
    return " ".join("".join(kept).split())


def sha1(text: str) -> str:
    return hashlib.sha1(text.encode("utf-8")).hexdigest()


def read_sources() -> list[dict]:
    files = sorted(SOURCE_DIR.glob("*.jsonl"))
    if not files:
        raise SourceError(f"no source files in {SOURCE_DIR}")
    rows = []
    for path in files:
        name = path.relative_to(HERE)
        with path.open(encoding="utf-8") as f:
            for lineno, line in enumerate(f, 1):
                where = f"{name}:{lineno}"
                if not line.strip():
                    raise SourceError(f"{where}: empty line")
                try:
                    obj = json.loads(line)
                except json.JSONDecodeError as exc:
                    raise SourceError(f"{where}: not valid JSON ({exc.msg})") from None
                if not isinstance(obj, dict):
                    raise SourceError(f"{where}: expected a JSON object")
                extra = set(obj) - set(FIELDS)
                if extra:
                    raise SourceError(f"{where}: unknown field(s) {sorted(extra)}")
                prompt = obj.get("prompt")
                if not isinstance(prompt, str) or not prompt.strip():
                    raise SourceError(f"{where}: 'prompt' must be a non-empty string")
                if obj.get("label") not in LABELS:
                    raise SourceError(
                        f"{where}: 'label' is {obj.get('label')!r}, expected one of {LABELS}"
                    )
                if obj.get("lang") not in LANGS:
                    raise SourceError(
                        f"{where}: 'lang' is {obj.get('lang')!r}, expected one of {LANGS}"
                    )
                kind = obj.get("kind")
                if not isinstance(kind, str) or not kind.strip() or "+" in kind:
                    raise SourceError(f"{where}: 'kind' must be a non-empty tag without '+'")
                if not normalize(prompt):
                    raise SourceError(f"{where}: prompt has no words after normalisation")
                rows.append(
                    {
                        "prompt": prompt.strip(),
                        "label": obj["label"],
                        "lang": obj["lang"],
                        "kind": kind.strip(),
                        "where": where,
                    }
                )
    return rows


def dedupe(rows: list[dict]) -> tuple[list[dict], int]:
    seen: dict[str, dict] = {}
    kept = []
    for row in rows:
        key = normalize(row["prompt"])
        first = seen.get(key)
        if first is None:
            seen[key] = row
            kept.append(row)
        elif first["label"] != row["label"]:
            raise SourceError(
                f"{row['where']}: duplicate of {first['where']} with a different label "
                f"({row['label']} vs {first['label']})"
            )
    return kept, len(rows) - len(kept)


def _word_spans(prompt: str) -> list[tuple[int, int, str]]:
    """(start, end, word) for every run of ASCII letters and apostrophes."""
    spans = []
    i = 0
    while i < len(prompt):
        if prompt[i].isascii() and prompt[i].isalpha():
            j = i
            while j < len(prompt) and (
                (prompt[j].isascii() and prompt[j].isalpha()) or prompt[j] in "'’"
            ):
                j += 1
            spans.append((i, j, prompt[i:j]))
            i = j
        else:
            i += 1
    return spans


def _one_typo(word: str, rng: random.Random) -> str:
    """One realistic slip inside a word of at least three letters."""
    op = rng.choice(("swap", "drop", "double", "neighbour"))
    letters = [k for k, ch in enumerate(word) if ch.isalpha()]
    if op == "swap":
        # a capitalised first letter stays first: "Teh", never "eTh"
        first = 1 if word[0].isupper() else 0
        pairs = [k for k in letters[first:-1] if word[k + 1].isalpha() and word[k] != word[k + 1]]
        if pairs:
            k = rng.choice(pairs)
            return word[:k] + word[k + 1] + word[k] + word[k + 2 :]
        op = "drop"
    if op == "drop":
        k = rng.choice(letters[1:])  # people rarely drop the first letter
        return word[:k] + word[k + 1 :]
    if op == "double":
        k = rng.choice([k for k in letters if word[k].islower()] or letters)
        return word[: k + 1] + word[k] + word[k + 1 :]
    k = rng.choice(letters[1:])
    ch = word[k]
    near = NEIGHBOURS.get(ch.lower(), "")
    if not near:
        return word[:k] + word[k + 1 :]
    sub = rng.choice(near)
    return word[:k] + (sub.upper() if ch.isupper() else sub) + word[k + 1 :]


def make_typo(prompt: str, rng: random.Random) -> str | None:
    candidates = []
    weights = []
    for start, end, word in _word_spans(prompt):
        low = word.lower()
        if len(word) < 3 or low in NEVER_TYPO:
            continue
        candidates.append((start, end, word))
        weights.append(KEY_WORD_WEIGHT if low in KEY_WORDS else 1.0)
    if not candidates:
        return None
    # 1-3 slips, but at most one per three eligible words: short prompts get a single typo
    n_typos = min(rng.choice((1, 1, 1, 2, 2, 3)), max(1, len(candidates) // 3))
    chosen: list[tuple[int, int, str]] = []
    pool = list(zip(candidates, weights, strict=True))
    for _ in range(n_typos):
        pick = rng.choices(range(len(pool)), weights=[w for _, w in pool])[0]
        chosen.append(pool.pop(pick)[0])
    out = prompt
    for start, end, word in sorted(chosen, reverse=True):  # right to left keeps offsets valid
        out = out[:start] + _one_typo(word, rng) + out[end:]
    return out


def add_typos(rows: list[dict]) -> tuple[list[dict], int]:
    rng = random.Random(SEED)
    taken = {normalize(r["prompt"]) for r in rows}
    out = []
    added = 0
    for row in rows:
        group = sha1(normalize(row["prompt"]))
        out.append({**row, "group": group})
        if row["lang"] != "en" or rng.random() >= TYPO_RATE:
            continue
        for _attempt in range(5):
            variant = make_typo(row["prompt"], rng)
            if variant is None:
                break
            key = normalize(variant)
            if key not in taken:
                taken.add(key)
                kind = row["kind"] + "+typo"
                out.append({**row, "prompt": variant, "kind": kind, "group": group})
                added += 1
                break
    return out, added


def split_of(group: str) -> str:
    bucket = int(sha1("split:" + group)[:8], 16) % 100
    if bucket < TRAIN_PCT:
        return "train"
    if bucket < TRAIN_PCT + VALIDATION_PCT:
        return "validation"
    return "test"


def print_table(by_split: dict[str, list[dict]]) -> None:
    cols = [(label, lang) for label in LABELS for lang in LANGS]
    header = ["split"] + [f"{label}/{lang}" for label, lang in cols] + ["total"]
    lines = [header]
    totals = [0] * (len(cols) + 1)
    for split in SPLITS:
        rows = by_split[split]
        counts = [sum(r["label"] == lb and r["lang"] == lg for r in rows) for lb, lg in cols]
        counts.append(len(rows))
        totals = [a + b for a, b in zip(totals, counts, strict=True)]
        lines.append([split] + [str(c) for c in counts])
    lines.append(["all"] + [str(c) for c in totals])
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    for k, line in enumerate(lines):
        cells = [line[0].ljust(widths[0])]
        cells += [c.rjust(w) for c, w in zip(line[1:], widths[1:], strict=True)]
        print("  ".join(cells))
        if k == 0 or k == len(lines) - 2:
            print("  ".join("-" * w for w in widths))


def main() -> int:
    try:
        rows = read_sources()
        unique, dropped = dedupe(rows)
    except SourceError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(f"read {len(rows)} prompts from {len(list(SOURCE_DIR.glob('*.jsonl')))} source files")
    print(f"dropped {dropped} duplicate(s) after normalisation")
    with_typos, added = add_typos(unique)
    print(f"added {added} typo variant(s) of English prompts (seed {SEED})")

    by_split: dict[str, list[dict]] = {s: [] for s in SPLITS}
    for row in with_typos:
        by_split[split_of(row["group"])].append(row)
    for split, split_rows in by_split.items():
        split_rows.sort(key=lambda r: (sha1(r["prompt"]), r["prompt"]))
        with (HERE / f"{split}.jsonl").open("w", encoding="utf-8", newline="\n") as f:
            for r in split_rows:
                f.write(json.dumps({k: r[k] for k in FIELDS}, ensure_ascii=False) + "\n")
    print()
    print_table(by_split)
    return 0


if __name__ == "__main__":
    sys.exit(main())
