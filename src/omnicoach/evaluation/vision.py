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
- "what is this exercise and how do I do it?": the right name, semantic similarity (MiniLM;
  evaluation/answer_scores.py) to the knowledge base's name and steps, and — stricter — the
  share of the knowledge base's steps the answer gives (step_recall).

Every measure is taken twice: the vision model alone (its own answer), and served — through
the assistant (omnicoach.assistant) as every door answers, grounding on: the model names the
exercise, the knowledge base gives the facts; the model's own answer where that gives none.

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

from omnicoach.assistant import Message, Picture, Text, TurnRequest, collect
from omnicoach.evaluation.answer_scores import semantic_similarity, step_recall
from omnicoach.images.decode import encode_png
from omnicoach.knowledge.answers import THIS_IS, full_name
from omnicoach.knowledge.answers import answer as kb_answer
from omnicoach.knowledge.base import KB_DIR, load_entries, load_vocabulary
from omnicoach.knowledge.names import NameIndex
from omnicoach.knowledge.phrasings import IDENTIFY, IDENTIFY_AND_HOW
from omnicoach.models.image_encoder import feature_cache
from omnicoach.models.sampling import SamplingParams
from omnicoach.models.vision_language import IMAGE_MARKER

NAME_TOKENS = 32  # "This is Boat Pose (Paripurna Navasana)." fits
HOW_TOKENS = 320
BENGALI = re.compile(r"[\u0980-\u09FF]")
LETTERS = re.compile(r"[^\W\d_]")


def bengali_share(text: str) -> float:
    letters = LETTERS.findall(text)
    return sum(bool(BENGALI.match(c)) for c in letters) / len(letters) if letters else 0.0


class VisionEvaluation:
    def __init__(self, assistant, images: Path, kb_dir: Path = KB_DIR):
        """ASSISTANT: the server's (omnicoach.assistant.Assistant), whose vision model is the
        one evaluated."""
        self.assistant, self.vision = assistant, assistant.registry.vision()
        self.embedder, self.images = assistant.registry.embedder(), Path(images)
        self.entries = {e["id"]: e for e in load_entries(kb_dir)}
        self.vocabulary = load_vocabulary(kb_dir)
        self.names = NameIndex(list(self.entries.values()))

    def named(self, text: str) -> str | None:
        return self.names.first(text)

    def _metadata(self, split: str) -> list[dict]:
        lines = (self.images / split / "metadata.jsonl").read_text().splitlines()
        return [json.loads(line) for line in lines if line]

    def run(
        self,
        per_exercise: int,
        how_per_exercise: int = 2,
        seed: int = 0,
        exercises: list[str] | None = None,
    ) -> dict:
        """EXERCISES: only these (a quick run); default every exercise in the test split."""
        rng = random.Random(seed)
        by_exercise: dict[str, list[dict]] = {}
        for meta in self._metadata("test"):
            if exercises is None or meta["exercise_id"] in exercises:
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
            "no_image_accuracy": _accuracy(items, "no_image"),
            "nearest_neighbour_accuracy": self._nearest_neighbour(items),
            "confusions": _confusions(items),
            "examples": how[:3],
            "answers": [
                {k: i[k] for k in ("file_name", "exercise_id", "lang", "question", "vlm")}
                | {"named": i["vlm_named"], "served": i["served"]}
                for i in items
            ],
        }
        bengali = [i for i in items if i["lang"] == "bn"]
        for way in ("vlm", "served"):
            report[way] = {
                "name_accuracy": _accuracy(items, way),
                "bengali_script_share": _mean([bengali_share(i[way]) > 0.5 for i in bengali]),
                # Stricter: the answer also spells the knowledge base's Bengali name (answers
                # give the English name first, then the Bengali one: vlm_dataset.full_name).
                "bengali_name_accuracy": _mean(
                    [_short_bengali(self.entries[i["exercise_id"]]) in i[way] for i in bengali]
                ),
                "how_name_accuracy": _mean([h[way]["correct"] for h in how]),
                "how_similarity": _mean([h[way]["similarity"] for h in how]),
                "how_step_recall": _mean([h[way]["step_recall"] for h in how]),
            }
        return report

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

    def _serve(self, prompts: list[tuple[str, Image.Image]], tokens: int) -> list[str]:
        """The answers every door gives to QUESTION about the picture, grounding on."""
        greedy = SamplingParams(temperature=0.0, max_tokens=tokens)

        def one(prompt):
            question, image = prompt
            parts = [Picture.from_bytes(encode_png(image), "image"), Text(question)]
            request = TurnRequest([Message("user", parts)], params=greedy, max_tokens=tokens)
            return collect(self.assistant.turn(request)).text

        with ThreadPoolExecutor(max_workers=8) as pool:
            return list(pool.map(one, prompts))

    def _image(self, meta: dict) -> Image.Image:
        return Image.open(self.images / "test" / meta["file_name"]).convert("RGB")

    def _ask_names(self, items: list[dict]) -> None:
        """Each item gets the model's answer ("vlm") and the exercise it names."""
        asked = [(i["question"], self._image(i)) for i in items]
        prompts = [([{"role": "user", "content": f"{IMAGE_MARKER}\n{q}"}], im) for q, im in asked]
        texts = self._generate(prompts, NAME_TOKENS)
        served = self._serve(asked, NAME_TOKENS)
        for item, text, answer in zip(items, texts, served, strict=True):
            item["vlm"], item["served"] = text, answer
            item["vlm_named"] = self.named(text)
            item["served_named"] = self.named(answer)

    def _ask_without_image(self, items: list[dict]) -> None:
        prompts = [([{"role": "user", "content": i["question"]}], None) for i in items]
        texts = self._generate(prompts, NAME_TOKENS)
        for item, text in zip(items, texts, strict=True):
            item["no_image"] = text
            item["no_image_named"] = self.named(text)

    def _ask_how(self, items: list[dict]) -> list[dict]:
        question = IDENTIFY_AND_HOW["en"][0]
        asked = [(question, self._image(i)) for i in items]
        prompts = [([{"role": "user", "content": f"{IMAGE_MARKER}\n{q}"}], im) for q, im in asked]
        answers = {"vlm": self._generate(prompts, HOW_TOKENS)}
        answers["served"] = self._serve(asked, HOW_TOKENS)
        references = []
        for item in items:
            entry = self.entries[item["exercise_id"]]
            steps = kb_answer(entry, "how", "en", self.vocabulary)
            references.append(THIS_IS["en"].format(name=full_name(entry, "en")) + "\n" + steps)
        results = [
            {
                "image": item["file_name"],
                "exercise_id": item["exercise_id"],
                "question": question,
                "reference": reference,
            }
            for item, reference in zip(items, references, strict=True)
        ]
        for way, texts in answers.items():
            similarity = semantic_similarity(self.embedder, texts, references)
            for result, text, score in zip(results, texts, similarity, strict=True):
                entry = self.entries[result["exercise_id"]]
                result[way] = {
                    "answer": text,
                    "similarity": round(score, 4),
                    "step_recall": round(step_recall(text, entry["steps"]["en"]), 4),
                    "correct": self.named(text) == result["exercise_id"],
                }
        return results

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


def _short_bengali(entry: dict) -> str:
    """The Bengali name without its gloss: "নৌকাসন (বোট পোজ)" → "নৌকাসন"."""
    return entry["name"]["bn"].split(" (")[0]


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
    vlm, served, none = report["vlm"], report["served"], report["no_image_accuracy"]

    def cell(accuracy: dict, lang: str) -> str:
        return f"{accuracy[lang]['accuracy']:.1%}" if lang in accuracy else "—"

    def row(what: str, key: str, percent: bool = True) -> str:
        shown = [vlm[key], served[key]]
        text = [("—" if v is None else f"{v:.1%}" if percent else f"{v:.3f}") for v in shown]
        return f"| {what} | {text[0]} | {text[1]} |"

    n = vlm["name_accuracy"]
    lines = [
        "# Vision-language model: held-out rendered images",
        "",
        f"Model `{report['model']}`, {report['image_tokens']} image tokens "
        f"({report['encoder']}); {report['exercises']} exercises × {report['per_exercise']} "
        f"test images (seeds never used in training), greedy, seed {report['seed']}. "
        "Regenerate: `omnicoach eval vlm`. *Served*: as the assistant answers with grounding "
        "on — the model names the exercise, the knowledge base gives the facts "
        "(assistant/answering.py).",
        "",
        "| | VLM alone | served |",
        "|---|---|---|",
    ]
    for lang, what in (("en", "English"), ("bn", "Bengali"), ("all", "all")):
        if lang in n:
            lines.append(
                f"| exercise-name accuracy, {what} questions (n {n[lang]['n']}) | "
                f"{cell(n, lang)} | {cell(served['name_accuracy'], lang)} |"
            )
    lines += [
        row("Bengali questions answered mostly in Bengali script", "bengali_script_share"),
        row("Bengali questions: the answer spells the Bengali name", "bengali_name_accuracy"),
        row('"…and how do I do it?": right name', "how_name_accuracy"),
        row('"…and how do I do it?": similarity to KB name + steps', "how_similarity", False),
        row('"…and how do I do it?": share of the KB\'s steps given', "how_step_recall"),
        "",
        f"Baselines on the same pictures: no image (words only) {cell(none, 'all')}; "
        f"nearest neighbour on the same features {report['nearest_neighbour_accuracy']:.1%}.",
        "A step counts as given when one answer line has ≥ 80 % of its words in order "
        "(evaluation/answer_scores.step_recall).",
        "",
        "Most frequent confusions (VLM alone):",
        "",
    ]
    lines += [f"- {c['true']} → {c['answered']} ({c['count']})" for c in report["confusions"]]
    lines += ["", "## Side by side", ""]
    for i, example in enumerate(report["examples"], 1):
        lines += [
            f"### {i}. `{example['exercise_id']}`",
            "",
            f"![{example['exercise_id']}](example-{i}.png)",
            "",
            f"**Question:** {example['question']}",
            "",
        ]
        for way, title in (("vlm", "VLM alone"), ("served", "Served")):
            answer = example[way]
            lines += [
                f"**{title}** (similarity {answer['similarity']:.3f}, "
                f"steps given {answer['step_recall']:.0%}):",
                "",
                "> " + answer["answer"].replace("\n", "\n> "),
                "",
            ]
        lines += ["**Knowledge base:**", "", "> " + example["reference"].replace("\n", "\n> "), ""]
    return "\n".join(lines)


def write_report(report: dict, images: Path, out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_text(json.dumps(report, indent=2, ensure_ascii=False))
    for i, example in enumerate(report["examples"], 1):
        Image.open(Path(images) / "test" / example["image"]).save(out / f"example-{i}.png")
    (out / "README.md").write_text(markdown_report(report))
