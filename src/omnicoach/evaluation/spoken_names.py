"""Are the exercises' names heard? Speech to text on held-out spoken questions.

    omnicoach eval spoken-names [--speech data/speech] [--out reports/spoken-names]

The clips are data/speech_dataset.py's test split: speakers and sentence templates that no
training clip has. Each configuration transcribes every clip; scored per clip:

- *name heard*: the knowledge base's name index (knowledge/names.py, the one chat questions are
  read with) finds the clip's exercise in the transcript;
- word error rate against the text that was said (jiwer, case and punctuation ignored);
- BLEU of all transcripts against the texts (sacrebleu).

Reported for Sanskrit names, gym exercises' names and yoga poses' English names apart. Beside
them, each configuration's word error rate on plain English: evaluation/speech.py's sentences,
spoken by espeak-ng and by the Piper voice, so that expecting names does not cost everyday words.
"""

import json
from pathlib import Path

import sacrebleu

from omnicoach.data.speech_dataset import load_split
from omnicoach.evaluation.speech import plain_wer, spoken_plain_sentences, transcribe, wer
from omnicoach.knowledge.base import load_entries
from omnicoach.knowledge.names import NameIndex
from omnicoach.knowledge.spoken_names import SpokenNameResolver, vocabulary

GROUPS = {
    "sanskrit names": lambda row: row["name_kind"] == "sanskrit",
    "gym names": lambda row: row["category"] == "gym",
    "yoga poses' English names": lambda row: (
        row["category"] == "yoga" and row["name_kind"] == "english"
    ),
}


def configurations(recognizers: dict) -> list[tuple[str, object, dict]]:
    """(name, recogniser, transcribe() arguments) of each decoding configuration: every
    recogniser in RECOGNIZERS (label → model) alone and told the knowledge base's names."""
    entries = load_entries()
    configs = []
    for label, recognizer in recognizers.items():
        configs.append((label, recognizer, {}))
        hotwords = vocabulary(entries, recognizer.count_tokens)
        configs.append((f"{label} + names as hotwords", recognizer, {"hotwords": hotwords}))
    return configs


def transcribe_all(recognizer, folder: Path, rows: list[dict], options: dict, progress) -> list:
    """What RECOGNIZER hears in each row's clip ("" where it hears no speech)."""
    return [
        transcribe(recognizer, (folder / row["audio"]).read_bytes(), **options)
        for row in progress(rows)
    ]


def score(rows: list[dict], heard: list[str], names: NameIndex) -> dict:
    def figures(pairs) -> dict:
        pairs = list(pairs)
        if not pairs:
            return {"n": 0}
        return {
            "n": len(pairs),
            "name_heard": sum(names.resolve(h).exercise == r["exercise"] for r, h in pairs)
            / len(pairs),
            "wer": sum(wer(r["text"], h) for r, h in pairs) / len(pairs),
            "bleu": sacrebleu.corpus_bleu(
                [h for _, h in pairs], [[r["text"] for r, _ in pairs]]
            ).score,
        }

    pairs = list(zip(rows, heard, strict=True))
    result = {"all": figures(pairs)}
    for group, belongs in GROUPS.items():
        result[group] = figures((r, h) for r, h in pairs if belongs(r))
    return result


def evaluate(
    recognizers: dict, folder: Path, piper, progress=lambda rows: rows, every: int = 1
) -> dict:
    """Every configuration on FOLDER's test split (each EVERY-th clip), each also with the name
    resolver after decoding; RECOGNIZERS is label → speech-to-text model, PIPER the loaded
    Piper voice."""
    rows = load_split(folder, "test")[::every]
    entries = load_entries()
    names, resolver = NameIndex(entries), SpokenNameResolver(entries)
    plain = spoken_plain_sentences(piper)
    report = {"clips": len(rows), "speakers": sorted({r["speaker"] for r in rows}), "configs": []}
    for label, recognizer, options in configurations(recognizers):
        heard = transcribe_all(recognizer, folder, rows, options, progress)
        plain_heard = [transcribe(recognizer, data, **options) for _, _, data in plain]
        for resolved in (False, True):
            fixed = [resolver.correct(h)[0] for h in heard] if resolved else heard
            fixed_plain = [resolver.correct(h)[0] for h in plain_heard] if resolved else plain_heard
            report["configs"].append(
                {
                    "name": label + (" + name resolver" if resolved else ""),
                    "model": recognizer.name,
                    "options": options,
                    "resolver": resolved,
                    "scores": score(rows, fixed, names),
                    "plain_english_wer": plain_wer(plain, fixed_plain),
                    "transcripts": [
                        {"text": r["text"], "heard": h, "exercise": r["exercise"]}
                        for r, h in zip(rows, fixed, strict=True)
                    ],
                }
            )
    return report


def markdown_report(report: dict) -> list[str]:
    groups = ["all", *GROUPS]
    lines = [
        f"{report['clips']} held-out clips (speakers and templates no training clip has). "
        "*Name heard*: the name index finds the clip's exercise in the transcript.",
        "",
        "| configuration | "
        + " | ".join(f"name heard, {g}" for g in groups)
        + " | WER | BLEU | WER, plain English |",
        "|---|" + "---|" * (len(groups) + 3),
    ]
    for config in report["configs"]:
        scores = config["scores"]
        cells = [f"{scores[g]['name_heard']:.1%} (n {scores[g]['n']})" for g in groups]
        lines.append(
            f"| {config['name']} | "
            + " | ".join(cells)
            + f" | {scores['all']['wer']:.1%} | {scores['all']['bleu']:.1f}"
            + f" | {config['plain_english_wer']:.1%} |"
        )
    return lines


def write_report(report: dict, out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_text(json.dumps(report, indent=1, ensure_ascii=False) + "\n")
    body = ["# Exercise names in speech", "", *markdown_report(report)]
    (out / "README.md").write_text("\n".join(body) + "\n")
