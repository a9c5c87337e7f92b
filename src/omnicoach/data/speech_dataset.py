"""Spoken questions that name the knowledge base's exercises: paired audio and text, generated.

    python -m omnicoach.data.speech_dataset [--out data/speech] [--seed 0]

Every exercise is said by each of its names — English, Sanskrit, the aliases a gym uses — in a
question or sentence from a template ("How do I do {name} safely?"), by synthetic speakers:
espeak-ng's English accents and variants at several speeds and pitches, and the bundled Piper
voice; then heard in a small room and over background noise (data/voices.py). Numerals are
said as words ("Warrior two").

The test split keeps whole speakers and whole templates out of training: three espeak-ng
accents (Scottish, New York, Lancaster) and the Piper voice are never in train or validation,
and neither are the test templates. It names each exercise by its English and Sanskrit names
(the aliases only train). Validation is a seeded tenth of the training speakers' clips.

Writes OUT/{train,validation,test}/NNNNN.wav (16 kHz mono) and OUT/{split}.jsonl, a row per
clip: audio, text, exercise, name, name_kind (english / sanskrit / alias), category (yoga /
gym), speaker, template. Deterministic from the seed; ~5 minutes on 2 cores.
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
    if piper is None:
        from omnicoach.models.bundled import piper_joe_onnx
        from omnicoach.models.tts import SpeechSynthesizer

        piper = SpeechSynthesizer(piper_joe_onnx(), PIPER_VOICE, threads=1)
    counts = {}
    for number, (split, rows) in enumerate(plan(seed).items()):
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
