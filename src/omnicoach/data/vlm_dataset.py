"""Training data for the vision-language model, in LLaVA's JSON format, from rendered images.

    python -m omnicoach.data.vlm_dataset --images data/exercise-images   # after the renderer

For each split folder written by data/exercise_images.py (`<split>/metadata.jsonl` + PNGs) it
writes two files beside the images:

- `captions.json` (stage 1, LLaVA's pretraining format): "<image>\\n<ask for a description>" →
  a one-sentence caption that starts with the exercise's name and says what is in the picture;
- `instruct.json` (stage 2, LLaVA-Instruct's format): conversations about the exercise —
  its name, how to do it, its muscles, follow-ups — in English and Bengali, answers taken from
  the knowledge base (data/kb) so they are checkable.

Each record is `{"id", "image": "<file_name>", "exercise_id", "lang", "conversations":
[{"from": "human"|"gpt", "value"}]}`; the image marker `<image>` opens the first human turn.
`load_llava` reads these files and real LLaVA-Instruct-150K JSON alike (with its image folder).
"""

import argparse
import json
import random
from pathlib import Path

from omnicoach.errors import InvalidRequestError
from omnicoach.knowledge.answers import THIS_IS, answer, full_name
from omnicoach.knowledge.base import KB_DIR, load_entries, load_vocabulary
from omnicoach.knowledge.phrasings import FOLLOW_UPS, IDENTIFY, IDENTIFY_AND_HOW
from omnicoach.models.vision_language import IMAGE_MARKER

SEED = 11
BENGALI_SHARE = 0.3
# Asking for a description (stage 1), as LLaVA's pretraining data does with varied phrasings.
DESCRIBE = [
    "Describe the image briefly.",
    "What is shown in this picture?",
    "Give a short caption for this image.",
    "Summarise what the photo shows.",
    "What is happening in this image?",
]
EQUIPMENT_WORDS = {
    "mat": "on a mat",
    "barbell": "with a barbell",
    "dumbbells": "with dumbbells",
    "dumbbell": "with a dumbbell",
    "bench": "on a bench",
    "kettlebell": "with a kettlebell",
    "pull-up bar": "on a pull-up bar",
}


def caption(entry: dict, meta: dict) -> str:
    """One sentence naming the exercise and what the picture shows (stage 1). The name comes
    first: stage 1 aligns the image tokens with a caption's first words."""
    gear = [EQUIPMENT_WORDS[e] for e in entry.get("equipment", []) if e in EQUIPMENT_WORDS][:1]
    view = "from the side" if abs(meta.get("yaw", 0)) < 20 else "from an angle"
    kind = "yoga pose" if entry["kind"] == "yoga_pose" else "exercise"
    where = f" {gear[0]}" if gear else ""
    return f"{full_name(entry, 'en')}: a person doing this {kind}, seen {view}{where}."


def instruct_conversation(entry: dict, lang: str, rng: random.Random, vocabulary: dict) -> list:
    """One LLaVA-Instruct conversation about ENTRY's picture (stage 2)."""
    name = full_name(entry, lang)
    this_is = THIS_IS[lang].format(name=name)
    kind = rng.random()
    if kind < 0.35:  # the name, with what the exercise is
        summary = entry["summary"][lang]
        turns = [(rng.choice(IDENTIFY[lang]), f"{this_is} {summary}")]
    elif kind < 0.6:  # the name and the steps at once: the page's typical question
        steps = answer(entry, "how", lang, vocabulary)
        turns = [(rng.choice(IDENTIFY_AND_HOW[lang]), f"{this_is}\n{steps}")]
    else:  # the name, then a follow-up about "it": the image stays the context
        aspect = rng.choice(["how", "muscles"])
        turns = [
            (rng.choice(IDENTIFY[lang]), this_is),
            (FOLLOW_UPS[lang][aspect], answer(entry, aspect, lang, vocabulary)),
        ]
    conversation = []
    for i, (question, reply) in enumerate(turns):
        value = f"{IMAGE_MARKER}\n{question}" if i == 0 else question
        conversation += [{"from": "human", "value": value}, {"from": "gpt", "value": reply}]
    return conversation


def build(split_dir: Path, kb_dir: Path = KB_DIR, seed: int = SEED) -> tuple[Path, Path]:
    """Write captions.json and instruct.json for the images of SPLIT_DIR."""
    entries = {e["id"]: e for e in load_entries(kb_dir)}
    vocabulary = load_vocabulary(kb_dir)
    lines = (split_dir / "metadata.jsonl").read_text().splitlines()
    metadata = [json.loads(line) for line in lines if line]
    rng = random.Random(f"{seed}-{split_dir.name}")
    captions, instruct = [], []
    for meta in metadata:
        entry = entries[meta["exercise_id"]]
        base = {"image": meta["file_name"], "exercise_id": entry["id"]}
        captions.append(
            {
                "id": f"{meta['file_name']}:caption",
                **base,
                "lang": "en",
                "conversations": [
                    {"from": "human", "value": f"{IMAGE_MARKER}\n{rng.choice(DESCRIBE)}"},
                    {"from": "gpt", "value": caption(entry, meta)},
                ],
            }
        )
        lang = "bn" if rng.random() < BENGALI_SHARE else "en"
        instruct.append(
            {
                "id": f"{meta['file_name']}:instruct",
                **base,
                "lang": lang,
                "conversations": instruct_conversation(entry, lang, rng, vocabulary),
            }
        )
    paths = split_dir / "captions.json", split_dir / "instruct.json"
    for path, records in zip(paths, (captions, instruct), strict=True):
        temporary = path.with_suffix(".tmp")
        temporary.write_text(json.dumps(records, ensure_ascii=False, indent=0))
        temporary.replace(path)
    return paths


def load_llava(json_path: Path, image_folder: Path | None = None) -> list[dict]:
    """Samples `{"image": Path, "messages": [{"role", "content"}], "exercise_id"?}` from a LLaVA
    JSON file (ours or LLaVA-Instruct-150K; images relative to IMAGE_FOLDER, by default the
    file's folder). Records without an image are skipped; a malformed one is an error naming
    its index, and so is a missing image file."""
    image_folder = Path(image_folder or Path(json_path).parent)
    try:
        records = json.loads(Path(json_path).read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise InvalidRequestError(f"cannot read LLaVA JSON {json_path}: {exc}") from exc
    if not isinstance(records, list):
        raise InvalidRequestError(f"{json_path}: expected a JSON list of conversations")
    roles = {"human": "user", "gpt": "assistant", "system": "system"}
    samples = []
    for index, record in enumerate(records):
        where = f"{json_path}[{index}]"
        if not isinstance(record, dict) or "conversations" not in record:
            raise InvalidRequestError(f'{where}: expected {{"image", "conversations": [...]}}')
        if not record.get("image"):
            continue  # LLaVA-Instruct mixes in text-only conversations: not for this model
        try:
            messages = [
                {"role": roles[turn["from"]], "content": str(turn["value"])}
                for turn in record["conversations"]
            ]
        except (KeyError, TypeError) as exc:
            raise InvalidRequestError(
                f'{where}: each turn needs "from" (human/gpt) and "value"'
            ) from exc
        first_user = next((m for m in messages if m["role"] == "user"), None)
        if first_user is None or not any(m["role"] == "assistant" for m in messages):
            raise InvalidRequestError(f"{where}: needs a human turn and a gpt turn")
        if IMAGE_MARKER not in first_user["content"]:  # LLaVA puts it first; accept it missing
            first_user["content"] = f"{IMAGE_MARKER}\n{first_user['content']}"
        image = image_folder / record["image"]
        if not image.is_file():
            raise InvalidRequestError(f"{where}: image {image} does not exist")
        samples.append({"image": image, "messages": messages, **_extras(record)})
    if not samples:
        raise InvalidRequestError(f"{json_path} holds no conversations with an image")
    return samples


def _extras(record: dict) -> dict:
    return {k: record[k] for k in ("id", "exercise_id", "lang") if k in record}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--images", type=Path, default=Path("data/exercise-images"))
    parser.add_argument("--seed", type=int, default=SEED)
    args = parser.parse_args()
    for split_dir in sorted(p.parent for p in args.images.glob("*/metadata.jsonl")):
        for path in build(split_dir, seed=args.seed):
            print(f"wrote {path} ({len(json.loads(path.read_text()))} conversations)")


if __name__ == "__main__":
    main()
