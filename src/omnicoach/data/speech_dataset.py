"""Spoken questions that name the knowledge base's exercises: paired audio and text, generated.

    python -m omnicoach.data.speech_dataset [--out data/speech] [--seed 0]

Every exercise is said by each of its names — English, Sanskrit, the aliases a gym uses — in a
question or sentence from a template ("How do I do {name} safely?"), by synthetic speakers:
espeak-ng's English accents and variants at several speeds and pitches, and the bundled Piper
voice; then heard in a small room and over background noise (data/voices.py). Numerals are
said as words ("Warrior two").

Beside them, train and validation hold everyday coaching sentences that name no exercise (the
knowledge base's steps, mistakes and cautions), so that a recogniser trained here keeps writing
ordinary English.

The test split keeps whole speakers and whole templates out of training: three espeak-ng
accents (Scottish, New York, Lancaster) and the Piper voice are never in train or validation,
and neither are the test templates. It names each exercise by its English and Sanskrit names
(the aliases only train). Validation is a seeded tenth of the training speakers' clips.

Writes OUT/{train,validation,test}/NNNNN.wav (16 kHz mono) and OUT/{split}.jsonl, a row per
clip: audio, text, exercise, name, name_kind (english / sanskrit / alias / none), category
(yoga / gym), speaker, template. Deterministic from the seed — except the Piper voice's clips,
which Piper samples afresh each time; ~3 minutes on 2 cores.
"""

import argparse
import json
import random
from pathlib import Path

import numpy as np
from scipy.signal import resample_poly
from tqdm import tqdm

from omnicoach.config import REPO
from omnicoach.data.voices import Speaker, in_a_room, speak, with_noise, write_wav
from omnicoach.knowledge.base import load_entries

RATE = 16_000
SEED = 0

TRAIN_TEMPLATES = [
    "How do I do {name}?",
    "What muscles does {name} work?",
    "Is {name} safe for beginners?",
    "Show me how to do {name}.",
    "What are the common mistakes in {name}?",
    "Can you explain {name} to me?",
    "I want to practise {name} today.",
    "How long should I hold {name}?",
    "What is {name} good for?",
    "Tell me about {name}, please.",
    "My knees hurt in {name}. What should I change?",
    "Give me an easier version of {name}.",
    "{name}",
    "Next, we will do {name}.",
]
TEST_TEMPLATES = [
    "How do I do {name} safely?",
    "What should I avoid in {name}?",
    "Which muscles are used in {name}?",
    "Teach me {name}.",
]

ESPEAK_VARIANTS = ["", "+m1", "+m3", "+m7", "+f1", "+f2", "+f4", "+klatt2"]
TRAIN_ACCENTS = ["en-us", "en-gb", "en-gb-x-rp", "en-029", "en-gb-x-gbcwmd"]
TEST_ACCENTS = ["en-gb-scotland", "en-us-nyc", "en-gb-x-gbclan"]
PIPER_VOICE = "joe"

NUMERAL_WORDS = {"I": "one", "II": "two", "III": "three", "1": "one", "2": "two", "3": "three"}


def spoken(name: str) -> str:
    """NAME as it is said: a numeral as a word ("Warrior II" → "Warrior two"), hyphens as
    spaces where they join words ("Legs-Up-the-Wall Pose" → "Legs Up the Wall Pose")."""
    words = name.replace("-", " ").split()
    if words and words[-1] in NUMERAL_WORDS:
        words[-1] = NUMERAL_WORDS[words[-1]]
    return " ".join(words)


def names_of(entry: dict, with_aliases: bool) -> list[tuple[str, str]]:
    """(name, kind) pairs an exercise is said by."""
    names = [(entry["name"]["en"], "english")]
    if entry.get("sanskrit"):
        names.append((entry["sanskrit"], "sanskrit"))
    if with_aliases:
        known = {n.lower() for n, _ in names}
        for alias in entry.get("aliases", []):
            if alias.isascii() and alias.lower() not in known:
                names.append((alias, "alias"))
                known.add(alias.lower())
    return names


def espeak_speaker(rng: random.Random, accents: list[str]) -> Speaker:
    voice = rng.choice(accents) + rng.choice(ESPEAK_VARIANTS)
    return Speaker(
        "espeak", voice, speed=rng.choice([140, 160, 175, 190]), pitch=rng.randint(30, 70)
    )


def piper_speaker(rng: random.Random) -> Speaker:
    return Speaker(
        "piper",
        PIPER_VOICE,
        speed=rng.choice([0.85, 1.0, 1.15]),
        noise=rng.choice([0.4, 0.667, 0.9]),
    )


def plan(seed: int = SEED) -> dict[str, list[dict]]:
    """What each split's clips say and who says them (no audio yet)."""
    rng = random.Random(seed)
    splits: dict[str, list[dict]] = {"train": [], "validation": [], "test": []}
    for entry in load_entries():
        category = "yoga" if entry["kind"] == "yoga_pose" else "gym"
        base = {"exercise": entry["id"], "category": category}
        for name, kind in names_of(entry, with_aliases=True):
            for _ in range(2):
                template = rng.randrange(len(TRAIN_TEMPLATES))
                split = "validation" if rng.random() < 0.1 else "train"
                splits[split].append(
                    {
                        **base,
                        "text": TRAIN_TEMPLATES[template].format(name=spoken(name)),
                        "name": name,
                        "name_kind": kind,
                        "speaker": espeak_speaker(rng, TRAIN_ACCENTS),
                        "template": f"train-{template}",
                    }
                )
        for name, kind in names_of(entry, with_aliases=False):
            for speaker in (espeak_speaker(rng, TEST_ACCENTS), piper_speaker(rng)):
                template = rng.randrange(len(TEST_TEMPLATES))
                splits["test"].append(
                    {
                        **base,
                        "text": TEST_TEMPLATES[template].format(name=spoken(name)),
                        "name": name,
                        "name_kind": kind,
                        "speaker": speaker,
                        "template": f"test-{template}",
                    }
                )
    return splits


PLAIN_PER_SPLIT = {"train": 300, "validation": 30}


def plain_rows(seed: int = SEED) -> dict[str, list[dict]]:
    """Everyday coaching sentences that name no exercise — the knowledge base's own steps,
    mistakes and cautions, 6 to 16 words — said by training speakers: they keep the fine-tune
    writing ordinary English as it was, and ending where the speech ends. Drawn with their own
    random stream, after every named clip, so the named clips stay as they were."""
    from omnicoach.knowledge.names import NameIndex

    rng = random.Random(seed + 1)
    entries = load_entries()
    names = NameIndex(entries)
    sentences = sorted(
        {
            text
            for entry in entries
            for field in ("steps", "common_mistakes", "cautions")
            for text in entry[field]["en"]
            if 6 <= len(text.split()) <= 16 and text.isascii() and not names.mentions(text)
        }
    )
    rng.shuffle(sentences)
    rows, start = {}, 0
    for split, count in PLAIN_PER_SPLIT.items():
        rows[split] = [
            {
                "exercise": None,
                "category": None,
                "text": text,
                "name": None,
                "name_kind": "none",
                "speaker": espeak_speaker(rng, TRAIN_ACCENTS),
                "template": "plain",
            }
            for text in sentences[start : start + count]
        ]
        start += count
    return rows


def heard(samples: np.ndarray, rate: int, rng: np.random.Generator) -> np.ndarray:
    """SAMPLES at 16 kHz, in a room half the time and over noise (10–30 dB SNR) most times."""
    if rate != RATE:
        samples = resample_poly(samples, RATE, rate).astype(np.float32)
    if rng.random() < 0.5:
        samples = in_a_room(samples, RATE, rng)
    if rng.random() < 0.7:
        samples = with_noise(samples, rng, snr_db=rng.uniform(10, 30))
    return samples


def build(out: Path, seed: int = SEED, piper=None) -> dict[str, int]:
    """Write the clips and the JSONL files; PIPER: the loaded Piper voice (loaded here if
    None). Returns the number of clips per split."""
    splits = plan(seed)
    for split, rows in plain_rows(seed).items():
        splits[split] += rows
    return _write(splits, out, seed, piper)


def _write(splits: dict[str, list[dict]], out: Path, seed: int, piper) -> dict[str, int]:
    """Speak every row of SPLITS into OUT/{split}/NNNNN.wav and OUT/{split}.jsonl."""
    if piper is None and any(
        r["speaker"].engine == "piper" for rows in splits.values() for r in rows
    ):
        from omnicoach.models.bundled import piper_joe_onnx
        from omnicoach.models.tts import SpeechSynthesizer

        piper = SpeechSynthesizer(piper_joe_onnx(), PIPER_VOICE, threads=1)
    counts = {}
    for number, (split, rows) in enumerate(splits.items()):
        folder = out / split
        folder.mkdir(parents=True, exist_ok=True)
        rng = np.random.default_rng([seed, number])
        with open(out / f"{split}.jsonl", "w", encoding="utf-8") as index:
            for clip, row in enumerate(tqdm(rows, desc=split, unit="clip")):
                samples, rate = speak(row["speaker"], row["text"], piper)
                audio = write_wav(folder / f"{clip:05d}.wav", heard(samples, rate, rng), RATE)
                row = {**row, "audio": str(audio.relative_to(out)), "speaker": row["speaker"].name}
                index.write(json.dumps(row, ensure_ascii=False) + "\n")
        counts[split] = len(rows)
    return counts


MAX_LINES = 2_000  # lines of a user's own vocabulary file
MAX_LINE_CHARS = 200


def read_lines(path: Path) -> list[str]:
    """The sentences of a user's vocabulary file (UTF-8 text, one sentence or name a line;
    blank lines skipped); InvalidRequestError naming the line for anything else."""
    from omnicoach.errors import InvalidRequestError

    try:
        text = Path(path).read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise InvalidRequestError(f"{path} is not UTF-8 text") from None
    lines = []
    for number, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if not line:
            continue
        if len(line) > MAX_LINE_CHARS:
            raise InvalidRequestError(
                f"{path}:{number}: a line is one sentence, at most {MAX_LINE_CHARS} characters"
            )
        lines.append(line)
    if len(lines) < 2:
        raise InvalidRequestError(f"{path} needs at least two sentences, one a line")
    if len(lines) > MAX_LINES:
        raise InvalidRequestError(f"{path} has {len(lines)} sentences; at most {MAX_LINES}")
    return lines


def speak_lines(lines: list[str], out: Path, seed: int = SEED, per_line: int = 4, piper=None):
    """A speech folder (train and validation, the layout build() writes) of LINES, each
    said by PER_LINE training speakers (one of them Piper's voice) in the same rooms and noise
    as the bundled set; a seeded tenth of the lines (at least one) is for validation."""
    rng = random.Random(seed)
    held = set(rng.sample(range(len(lines)), max(1, len(lines) // 10)))
    rows: dict[str, list[dict]] = {"train": [], "validation": []}
    for i, line in enumerate(lines):
        split = "validation" if i in held else "train"
        for k in range(per_line):
            speaker = piper_speaker(rng) if k == 0 else espeak_speaker(rng, TRAIN_ACCENTS)
            rows[split].append({"text": line, "speaker": speaker, "template": "user"})
    return _write(rows, out, seed, piper)


def load_split(folder: Path, split: str) -> list[dict]:
    lines = (folder / f"{split}.jsonl").read_text(encoding="utf-8").splitlines()
    return [json.loads(line) for line in lines if line.strip()]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=Path, default=REPO / "data" / "speech")
    parser.add_argument("--seed", type=int, default=SEED)
    args = parser.parse_args()
    for split, count in build(args.out, args.seed).items():
        print(f"{split}: {count} clips")


if __name__ == "__main__":
    main()
