"""How well the vision-language model sees: exercise names, answers, language, baselines.

    omnicoach eval vlm [--images data/exercise-images] [--per-exercise 10] [--out reports/vlm]

On held-out rendered images (the test split: seeds never rendered for training), through the
model and engine the server uses (registry.vision()), greedy:

- exercise-name accuracy: "What exercise is this?" — the answer names the right exercise
  (the first knowledge-base name, Sanskrit name or alias it mentions);
- the same question with no image at all (what the LLM guesses from words alone), and a
  nearest-neighbour classifier on the same image features (train split → test split): what
  the LLM path adds over a plain classifier;
- Bengali: the question asked in Bengali — accuracy on the Bengali name, and the share of
  answers written in Bengali script;
- semantic similarity (MiniLM; evaluation/answer_scores.py) of "what is this exercise and how
  do I do it?" answers to the knowledge base's reference answer (the name and the steps).

Writes results.json, README.md (tables and 3 side-by-side examples) and the examples' images
to the output directory.
"""

import json
import random
import re
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import torch
from PIL import Image

from omnicoach.data.sft_dataset import answer as kb_answer
from omnicoach.data.vlm_dataset import IDENTIFY, IDENTIFY_AND_HOW, THIS_IS, full_name
from omnicoach.evaluation.answer_scores import semantic_similarity
from omnicoach.knowledge.base import KB_DIR, load_entries
from omnicoach.models.image_encoder import feature_cache
from omnicoach.models.sampling import SamplingParams
from omnicoach.models.vision_language import IMAGE_MARKER

NAME_TOKENS = 32  # "This is Boat Pose (Paripurna Navasana)." fits
HOW_TOKENS = 320
BENGALI = re.compile(r"[\u0980-\u09FF]")
LETTERS = re.compile(r"[^\W\d_]")


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
    """The exercise the answer names first (the longest name wins at the same place)."""
    best = None
    for exercise, pattern in patterns:
        match = pattern.search(text)
        if match and (best is None or (match.start(), -len(match[0])) < best[0]):
            best = ((match.start(), -len(match[0])), exercise)
    return best[1] if best else None


def bengali_share(text: str) -> float:
    letters = LETTERS.findall(text)
    return sum(bool(BENGALI.match(c)) for c in letters) / len(letters) if letters else 0.0


class VisionEvaluation:
    def __init__(self, vision, embedder, images: Path, kb_dir: Path = KB_DIR):
        self.vision, self.embedder, self.images = vision, embedder, Path(images)
        self.entries = {e["id"]: e for e in load_entries(kb_dir)}
        self.vocabulary = json.loads((kb_dir / "vocabulary.json").read_text())
        self.patterns = name_patterns(list(self.entries.values()))

    def _metadata(self, split: str) -> list[dict]:
        lines = (self.images / split / "metadata.jsonl").read_text().splitlines()
        return [json.loads(line) for line in lines if line]

    def run(self, per_exercise: int, how_per_exercise: int = 2, seed: int = 0) -> dict:
        rng = random.Random(seed)
        by_exercise: dict[str, list[dict]] = {}
        for meta in self._metadata("test"):
            by_exercise.setdefault(meta["exercise_id"], []).append(meta)
        items = [m for ms in by_exercise.values() for m in ms[:per_exercise]]
        for item in items:
            item["lang"] = "bn" if rng.random() < 0.25 else "en"
            item["question"] = rng.choice(IDENTIFY[item["lang"]])
        self._ask_names(items)
        self._ask_without_image(items)
        how_items = [m for ms in by_exercise.values() for m in ms[:how_per_exercise]]
        how = self._ask_how(how_items)
        report = {
            "images": str(self.images / "test"),
            "exercises": len(by_exercise),
            "per_exercise": per_exercise,
            "model": self.vision.name,
            "image_tokens": self.vision.image_tokens,
            "encoder": self.vision.encoder.name,
            "seed": seed,
            "name_accuracy": _accuracy(items, "vlm"),
            "no_image_accuracy": _accuracy(items, "no_image"),
            "nearest_neighbour_accuracy": self._nearest_neighbour(items),
            "how_similarity": _mean([h["similarity"] for h in how]),
            "how_name_accuracy": _mean([h["correct"] for h in how]),
            "bengali_script_share": _mean(
                [bengali_share(i["vlm"]) > 0.5 for i in items if i["lang"] == "bn"]
            ),
            # Stricter: the answer also spells the knowledge base's Bengali name (answers give
            # the English name first, then the Bengali one: data/vlm_dataset.full_name).
            "bengali_name_accuracy": _mean(
                [self._spells_bengali_name(i) for i in items if i["lang"] == "bn"]
            ),
            "confusions": _confusions(items),
            "examples": how[:3],
            "answers": [
                {k: i[k] for k in ("file_name", "exercise_id", "lang", "question", "vlm")}
                | {"named": i["vlm_named"]}
                for i in items
            ],
        }
        return report

    def _spells_bengali_name(self, item: dict) -> bool:
        return short_bengali_name(self.entries[item["exercise_id"]]) in item["vlm"]

    def _generate(self, prompts: list[tuple[list[dict], Image.Image | None]], tokens: int):
        greedy = SamplingParams(temperature=0.0, max_tokens=tokens)

        def one(prompt):
            messages, image = prompt
            if image is None:
                return self.vision.llm.complete(messages, greedy).text
            return "".join(self.vision.stream(messages, image, greedy))

        # Concurrent requests share the engine's batched decode, as the server's do.
        with ThreadPoolExecutor(max_workers=8) as pool:
            return list(pool.map(one, prompts))

    def _image(self, meta: dict) -> Image.Image:
        return Image.open(self.images / "test" / meta["file_name"]).convert("RGB")

    def _ask_names(self, items: list[dict]) -> None:
        """Each item gets the model's answer ("vlm") and the exercise it names."""
        prompts = [
            ([{"role": "user", "content": f"{IMAGE_MARKER}\n{i['question']}"}], self._image(i))
            for i in items
        ]
        texts = self._generate(prompts, NAME_TOKENS)
        for item, text in zip(items, texts, strict=True):
            item["vlm"] = text
            item["vlm_named"] = named_exercise(text, self.patterns)

    def _ask_without_image(self, items: list[dict]) -> None:
        prompts = [([{"role": "user", "content": i["question"]}], None) for i in items]
        texts = self._generate(prompts, NAME_TOKENS)
        for item, text in zip(items, texts, strict=True):
            item["no_image"] = text
            item["no_image_named"] = named_exercise(text, self.patterns)

    def _ask_how(self, items: list[dict]) -> list[dict]:
        question = IDENTIFY_AND_HOW["en"][0]
        prompts = [
            ([{"role": "user", "content": f"{IMAGE_MARKER}\n{question}"}], self._image(i))
            for i in items
        ]
        texts = self._generate(prompts, HOW_TOKENS)
        references = []
        for item in items:
            entry = self.entries[item["exercise_id"]]
            steps = kb_answer(entry, "how", "en", self.vocabulary)
            references.append(THIS_IS["en"].format(name=full_name(entry, "en")) + "\n" + steps)
        similarity = semantic_similarity(self.embedder, texts, references)
        return [
            {
                "image": item["file_name"],
                "exercise_id": item["exercise_id"],
                "question": question,
                "answer": text,
                "reference": reference,
                "similarity": round(score, 4),
                "correct": named_exercise(text, self.patterns) == item["exercise_id"],
            }
            for item, text, reference, score in zip(
                items, texts, references, similarity, strict=True
            )
        ]

    def _nearest_neighbour(self, items: list[dict]) -> float:
        """1-NN (cosine, grid-averaged features) from every train image to the test items."""
        encoder = self.vision.encoder
        train = self._metadata("train")
        train_names = [m["file_name"] for m in train]
        train_features = feature_cache(encoder, self.images / "train", train_names)
        test_features = feature_cache(
            encoder, self.images / "test", [i["file_name"] for i in items], progress=False
        )

        def pooled(features):
            return torch.nn.functional.normalize(features.mean(1), dim=1)

        nearest = (pooled(test_features) @ pooled(train_features).T).argmax(1).tolist()
        pairs = zip(nearest, items, strict=True)
        hits = [train[n]["exercise_id"] == item["exercise_id"] for n, item in pairs]
        return round(sum(hits) / len(hits), 4)


def _accuracy(items: list[dict], key: str) -> dict:
    cells = {}
    for lang in ("en", "bn", "all"):
        chosen = [i for i in items if lang == "all" or i["lang"] == lang]
        if chosen:
            hits = [i[f"{key}_named"] == i["exercise_id"] for i in chosen]
            cells[lang] = {"accuracy": round(sum(hits) / len(hits), 4), "n": len(hits)}
    return cells


def _confusions(items: list[dict]) -> list[dict]:
    counts: dict[tuple, int] = {}
    for item in items:
        if item["vlm_named"] != item["exercise_id"]:
            key = (item["exercise_id"], item["vlm_named"] or "(no exercise named)")
            counts[key] = counts.get(key, 0) + 1
    ranked = sorted(counts.items(), key=lambda pair: -pair[1])[:10]
    return [{"true": t, "answered": a, "count": c} for (t, a), c in ranked]


def _mean(values) -> float | None:
    values = [float(v) for v in values]
    return round(sum(values) / len(values), 4) if values else None


def markdown_report(report: dict) -> str:
    name, none = report["name_accuracy"], report["no_image_accuracy"]
    lines = [
        "# Vision-language model: held-out rendered images",
        "",
        f"Model `{report['model']}`, {report['image_tokens']} image tokens "
        f"({report['encoder']}); {report['exercises']} exercises × {report['per_exercise']} "
        f"test images (seeds never used in training), greedy, seed {report['seed']}. "
        "Regenerate: `omnicoach eval vlm`.",
        "",
        "| | exercise-name accuracy | n |",
        "|---|---|---|",
        f"| VLM, English question | {name['en']['accuracy']:.1%} | {name['en']['n']} |",
    ]
    if "bn" in name:
        lines.append(
            f"| VLM, Bengali question | {name['bn']['accuracy']:.1%} | {name['bn']['n']} |"
        )
    lines += [
        f"| VLM, all | {name['all']['accuracy']:.1%} | {name['all']['n']} |",
        f"| baseline: no image (words only) | {none['all']['accuracy']:.1%} | {none['all']['n']} |",
        f"| baseline: nearest neighbour on the same features | "
        f"{report['nearest_neighbour_accuracy']:.1%} | {name['all']['n']} |",
        "",
        f"Bengali questions answered in Bengali script: {report['bengali_script_share']:.1%}; "
        f"the answer spells the exercise's Bengali name: {report['bengali_name_accuracy']:.1%} "
        "(Bengali answers give the English name first, then the Bengali one).",
        f'"What is this exercise and how do I do it?": semantic similarity to the knowledge '
        f"base's name + steps {report['how_similarity']:.3f}, right name in "
        f"{report['how_name_accuracy']:.1%} of answers.",
        "",
        "Most frequent confusions:",
        "",
    ]
    lines += [f"- {c['true']} → {c['answered']} ({c['count']})" for c in report["confusions"]]
    lines += ["", "## Side by side", ""]
    for i, example in enumerate(report["examples"], 1):
        lines += [
            f"### {i}. `{example['exercise_id']}` (similarity {example['similarity']:.3f})",
            "",
            f"![{example['exercise_id']}](example-{i}.png)",
            "",
            f"**Question:** {example['question']}",
            "",
            "**Model:**",
            "",
            "> " + example["answer"].replace("\n", "\n> "),
            "",
            "**Knowledge base:**",
            "",
            "> " + example["reference"].replace("\n", "\n> "),
            "",
        ]
    return "\n".join(lines)


def write_report(report: dict, images: Path, out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_text(json.dumps(report, indent=2, ensure_ascii=False))
    for i, example in enumerate(report["examples"], 1):
        Image.open(Path(images) / "test" / example["image"]).save(out / f"example-{i}.png")
    (out / "README.md").write_text(markdown_report(report))
