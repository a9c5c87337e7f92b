"""One report of every evaluation: `omnicoach eval all` → reports/latest/README.md.

    omnicoach eval all [--only a,b] [--skip a,b] [--quick] [--out reports/latest]
                       [--reuse pretrain] [--rerun pretrain]

Each section runs one evaluation through the same classes and report writers as its own
command (`omnicoach eval sft|vlm|imagegen`, `omnicoach train router|pretrain`), writes that
command's report and a few small PNG plots into OUT/<section>/, and gives the summary table
its headline figures. The sections, in the order they run:

- wer: speech to text, word error rate on twelve plain sentences (espeak-ng and Piper);
- spoken-names: exercise names heard in held-out spoken questions, base vs fine-tuned Whisper,
  with the names as hotwords and the name resolver;
- router: accuracy, macro-F1 and confusion of the shipped prompt router on its test split;
- sft: perplexity, semantic similarity and BLEU, base vs LoRA, with and without retrieval;
- facts: fact accuracy of answers on held-out questions, grounded vs generative, base vs LoRA;
- vlm: the vision model's exercise-name accuracy per kind of question (VQA);
- imagegen: recognised share, CLIP score (the alignment model's) and FID per sampler;
- pretrain: the from-scratch LM against SmolLM2 (read from reports/pretrain by default: the
  run takes 10 minutes of training; `--rerun pretrain` trains it again).

A section that fails is written into the report as failed, with its error, and the others
still run; the command then exits non-zero. The report is rewritten after every section, so a
long run shows what is done so far. `--quick` runs small subsets (a smoke test of the whole
path): every figure, plot title and the report itself say QUICK, and its default output is
var/eval-quick, never reports/latest. A section read from an existing report says so, with
that report's date, instead of pretending it ran.
"""

import json
import os
import random
import re
import shutil
import subprocess
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from omnicoach.config import REPO
from omnicoach.evaluation.plots import bar_chart, confusion_plot

REPORTS = REPO / "reports"
QUICK_LABEL = "QUICK smoke run: small subsets, not the real figures"
# Quick runs: a few exercises of each kind (a pose, a strength exercise, a stretch).
QUICK_EXERCISES = ["boat-pose", "tree-pose", "barbell-back-squat"]
QUICK_DRAWINGS = ["boat-pose", "tree-pose", "barbell-back-squat", "downward-facing-dog"]


@dataclass
class Metric:
    """One row of the summary table."""

    metric: str
    value: str
    held_out: str


@dataclass
class Outcome:
    """What a section gives the report."""

    metrics: list[Metric]
    body: list[str]  # markdown lines, figures included (paths relative to the section folder)
    source: str = "rerun"  # or "from reports/pretrain (2026-11-30)"


@dataclass
class Context:
    """What a section may use: its own folder, the shared model registry, the options."""

    out: Path  # OUT/<section>/
    quick: bool
    log: Callable[[str], None]
    registry_factory: Callable[[], tuple] | None = None  # () -> (settings, registry)
    _loaded: tuple | None = field(default=None, repr=False)

    def _load(self) -> tuple:
        if self._loaded is None:
            if self.registry_factory is None:
                raise RuntimeError("this section needs the models, and no registry was given")
            self._loaded = self.registry_factory()
        return self._loaded

    @property
    def settings(self):
        return self._load()[0]

    @property
    def registry(self):
        return self._load()[1]

    def progress(self, iterable, **options):
        from tqdm.auto import tqdm

        return tqdm(iterable, **options)

    def title(self, text: str) -> str:
        """A plot title, marked when the figures are a quick run's."""
        return f"{text}\nQUICK smoke run (not the real figures)" if self.quick else text


@dataclass(frozen=True)
class Section:
    name: str
    title: str
    command: str  # reproduces the full section
    full_time: str  # a full run's wall time as measured (README), for planning
    run: Callable[[Context], Outcome]
    reuse: Callable[[Context], Outcome] | None = None  # read the existing report instead


@dataclass
class SectionResult:
    name: str
    title: str
    command: str
    status: str  # "ok" or "failed"
    seconds: float
    outcome: Outcome | None = None
    error: str | None = None
    traceback: str | None = None


# --- helpers -------------------------------------------------------------------------------------


def _figure(name: str, caption: str) -> list[str]:
    return [f"![{caption}]({name})", ""]


def _cell(text) -> str:
    return " ".join(str(text).split()).replace("|", "\\|")


def _report_date(path: Path) -> str:
    """The day an existing report was made: its last commit, else the file's time."""
    try:
        out = subprocess.run(
            ["git", "log", "-1", "--format=%cs", "--", str(path)],
            cwd=REPO,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        out = ""
    if out:
        return out
    return datetime.fromtimestamp(path.stat().st_mtime, UTC).strftime("%Y-%m-%d")


def _from(path: Path, date: str | None = None) -> str:
    shown = os.path.relpath(path, REPO) if path.is_relative_to(REPO) else str(path)
    return f"from {shown} ({date or _report_date(path)})"


def _link(ctx: Context, target: Path) -> str:
    """TARGET as a link relative to the report's README (OUT/README.md)."""
    return os.path.relpath(target, ctx.out.parent).replace(os.sep, "/")


def _pct(value: float | None) -> str:
    return "—" if value is None else f"{value:.1%}"


# --- wer: speech to text -------------------------------------------------------------------------


def wer_section(ctx: Context) -> Outcome:
    from omnicoach.evaluation import speech

    sentences = speech.PLAIN_SENTENCES[:3] if ctx.quick else speech.PLAIN_SENTENCES
    speech_to_text, text_to_speech = ctx.registry.speech_to_text(), ctx.registry.text_to_speech()
    clips = speech.spoken_plain_sentences(text_to_speech, ctx.progress(sentences, desc="WER"))
    heard = [speech.transcribe(speech_to_text, data) for _, _, data in clips]
    rows = []
    for (sentence, voice, _), transcript in zip(clips, heard, strict=True):
        if not rows or rows[-1]["sentence"] != sentence:
            rows.append({"sentence": sentence})
        rows[-1][voice] = {
            "transcript": transcript or "(nothing heard)",
            "wer": speech.wer(sentence, transcript),
        }
    ctx.out.joinpath("results.json").write_text(json.dumps(rows, indent=1))
    means = {v: sum(r[v]["wer"] for r in rows) / len(rows) for v in ("espeak-ng", "Piper")}
    plot = bar_chart(
        ctx.out / "wer.png",
        [f"S{i + 1}" for i in range(len(rows))],
        {v: [r[v]["wer"] for r in rows] for v in ("espeak-ng", "Piper")},
        ctx.title(f"Word error rate per clip ({speech_to_text.name})"),
        "WER",
        percent=True,
    )
    held_out = f"{len(rows)} sentences of omnicoach.evaluation.speech, spoken at run time"
    body = [
        f"Model `{speech_to_text.name}` (the configured speech-to-text model). Each sentence is "
        "spoken by espeak-ng (a formant synthesiser, independent of the models) and by the Piper "
        f"voice `{text_to_speech.name}` (the round trip the voice tests make), decoded as an "
        "upload is, transcribed, and scored with WER (case and punctuation ignored). All "
        "twelve sentences count: the eight the speech tests hold to 25 % each and four "
        "harder ones.",
        "",
        "| clip | sentence | espeak-ng heard | WER | Piper heard | WER |",
        "|---|---|---|---|---|---|",
    ]
    for i, r in enumerate(rows):
        e, p = r["espeak-ng"], r["Piper"]
        body.append(
            f"| S{i + 1} | {_cell(r['sentence'])} | {_cell(e['transcript'])} | {e['wer']:.0%} | "
            f"{_cell(p['transcript'])} | {p['wer']:.0%} |"
        )
    body += ["", *_figure(plot, "word error rate per clip")]
    metrics = [
        Metric("WER, espeak-ng speech (mean per clip)", _pct(means["espeak-ng"]), held_out),
        Metric("WER, Piper → Whisper round trip (mean per clip)", _pct(means["Piper"]), held_out),
    ]
    return Outcome(metrics, body)


# --- spoken-names: exercise names in speech ------------------------------------------------------


def _spoken_names_outcome(report: dict, source: str) -> Outcome:
    from omnicoach.evaluation.spoken_names import markdown_report

    metrics = []
    for config in report["configs"]:
        scores = config["scores"]
        for group in ("sanskrit names", "gym names"):
            metrics.append(
                Metric(
                    f"{group} heard, {config['name']}",
                    _pct(scores[group]["name_heard"]),
                    "yes (held-out speakers and templates)",
                )
            )
        metrics.append(
            Metric(
                f"WER, plain English, {config['name']}", _pct(config["plain_english_wer"]), "yes"
            )
        )
    return Outcome(metrics, markdown_report(report), source)


def spoken_names_section(ctx: Context) -> Outcome:
    from omnicoach.errors import ConfigError
    from omnicoach.evaluation.spoken_names import evaluate, write_report
    from omnicoach.models.registry import BASE_SPEECH_MODEL, TUNED_SPEECH_MODEL

    speech = REPO / "data" / "speech"
    if not (speech / "test.jsonl").is_file():
        raise ConfigError(
            f"no spoken questions in {speech}: make them with "
            "`python -m omnicoach.data.speech_dataset` (~5 minutes)"
        )
    recognizers = {
        "Whisper tiny.en": ctx.registry.speech_to_text(BASE_SPEECH_MODEL),
        "fine-tuned": ctx.registry.speech_to_text(TUNED_SPEECH_MODEL),
    }
    every = 20 if ctx.quick else 1
    report = evaluate(recognizers, speech, ctx.registry.text_to_speech(), ctx.progress, every)
    write_report(report, ctx.out)
    return _spoken_names_outcome(report, "rerun")


def spoken_names_reuse(ctx: Context) -> Outcome:
    path = REPORTS / "spoken-names" / "results.json"
    return _spoken_names_outcome(json.loads(path.read_text()), _from(path))


# --- router --------------------------------------------------------------------------------------


def _router_outcome(ctx: Context, scores: dict, manifest: dict, source: str, extra: list[str]):
    comparison = dict(manifest.get("comparison", {}))
    shipped = "MiniLM + LoRA (shipped)" + (" — this run" if source == "rerun" else "")
    models = {k: v for k, v in comparison.items() if "shipped" not in k}
    models[shipped] = scores
    confusion = confusion_plot(
        ctx.out / "confusion.png",
        scores["labels"],
        scores["confusion"],
        ctx.title(f"Router on the test split ({scores['examples']} prompts)"),
    )
    names = [name.split(" (")[0].replace("logistic regression", "logistic reg.") for name in models]
    compared = bar_chart(
        ctx.out / "models.png",
        names,
        {
            "accuracy": [m["accuracy"] for m in models.values()],
            "macro-F1": [m["macro_f1"] for m in models.values()],
        },
        ctx.title("Router: shipped model against the baselines (test split)"),
        "score",
    )
    per_class = _per_class_f1(scores)
    held_out = f"data/router/test.jsonl ({scores['examples']} prompts, en + bn)"
    trained = _from(REPO / "artifacts" / "router" / "manifest.json", manifest["created"][:10])
    if source == "rerun":
        how = (
            "measured now through `PromptRouter.classify_many`, as the server routes (threshold "
            f"{manifest['threshold']})"
        )
    else:
        how = "as `omnicoach train router` measured it when it trained the router"
    body = [
        f"The shipped router (`artifacts/router`, MiniLM + LoRA) on the held-out test split, "
        f"{how}. The baselines (zero-shot, logistic regression) are the figures "
        f"`omnicoach train router` measured on the same split, {trained} (retraining takes "
        "~7 minutes: `make router`).",
        "",
        "| model | prompts | accuracy | macro-F1 | English | Bengali |",
        "|---|---|---|---|---|---|",
    ]
    for name, s in models.items():
        lang = s.get("by_language", {})
        body.append(
            f"| {name} | {s['examples']} | {s['accuracy']:.4f} | {s['macro_f1']:.4f} | "
            f"{lang.get('en', float('nan')):.4f} | {lang.get('bn', float('nan')):.4f} |"
        )
    body += [
        "",
        "F1 per class: " + ", ".join(f"{k} {v:.4f}" for k, v in per_class.items()) + ".",
        "",
        *extra,
        *_figure(confusion, "confusion matrix"),
        *_figure(compared, "accuracy and macro-F1 of the three models"),
    ]
    metrics = [
        Metric("router accuracy (shipped)", f"{scores['accuracy']:.2%}", held_out),
        Metric("router macro-F1 (shipped)", f"{scores['macro_f1']:.4f}", held_out),
    ]
    return Outcome(metrics, body, source)


def _per_class_f1(scores: dict) -> dict[str, float]:
    matrix, labels = scores["confusion"], scores["labels"]
    f1 = {}
    for i, label in enumerate(labels):
        hits = matrix[i][i]
        truth, predicted = sum(matrix[i]), sum(row[i] for row in matrix)
        f1[label] = 2 * hits / (truth + predicted) if truth + predicted else 0.0
    return f1


def router_section(ctx: Context) -> Outcome:
    # _scores is the function that measured the manifest's figures: the same definitions.
    from omnicoach.training.router import _scores, load_examples

    examples = load_examples(REPO / "data" / "router" / "test.jsonl")
    if ctx.quick:
        examples = random.Random(0).sample(examples, 60)
    router = ctx.registry.router()
    predicted = []
    for start in ctx.progress(range(0, len(examples), 64), desc="router"):
        batch = [e.prompt for e in examples[start : start + 64]]
        predicted += [route.label for route in router.classify_many(batch)]
    scores = _scores(examples, predicted)
    mistakes = [
        {"prompt": e.prompt, "lang": e.lang, "truth": e.label, "predicted": p}
        for e, p in zip(examples, predicted, strict=True)
        if e.label != p
    ]
    ctx.out.joinpath("results.json").write_text(
        json.dumps({"scores": scores, "mistakes": mistakes}, indent=1, ensure_ascii=False)
    )
    manifest = {**router.manifest, "threshold": router.threshold}
    extra = [f"Mistakes ({len(mistakes)}):", ""]
    extra += [f"- {_cell(m['prompt'])} — {m['truth']} → {m['predicted']}" for m in mistakes]
    return _router_outcome(ctx, scores, manifest, "rerun", [*extra, ""])


def router_reuse(ctx: Context) -> Outcome:
    from omnicoach.artifacts import read_manifest

    manifest = read_manifest(REPO / "artifacts" / "router")
    source = _from(REPO / "artifacts" / "router" / "manifest.json", manifest["created"][:10])
    return _router_outcome(ctx, manifest["metrics"], manifest, source, [])


# --- sft: perplexity, semantic similarity, BLEU --------------------------------------------------


def _sft_outcome(ctx: Context, report: dict, source: str, readme: Path) -> Outcome:
    from omnicoach.evaluation.fine_tune import LANGS, SPLITS

    results = report["results"]
    cells = [f"{split}/{lang}" for split in SPLITS for lang in LANGS]
    short = [c.replace("test_", "") for c in cells]
    figures = []
    for key, title, ylabel, log_scale in (
        ("perplexity", "Perplexity of the reference answers (lower is better)", "perplexity", True),
        ("similarity", "Semantic similarity to the reference (MiniLM cosine)", "cosine", False),
        ("bleu", "BLEU of the generated answers", "BLEU", False),
    ):
        series = {label: [results[label][c][key] for c in cells] for label in results}
        figures.append(
            bar_chart(ctx.out / f"{key}.png", short, series, ctx.title(title), ylabel, log_scale)
        )
    held = (
        f"data/sft test_unseen (exercises held out of training), {report['per_cell']} answers and "
        f"{report['perplexity_per_cell']} references per cell"
    )

    def pair(label: str, key: str, form: str) -> str:
        values = [results[label][f"test_unseen/{lang}"][key] for lang in LANGS]
        return " / ".join("—" if v is None else form.format(v) for v in values)

    metrics = []
    for key, name, form in (
        ("perplexity", "perplexity", "{:.2f}"),
        ("similarity", "semantic similarity", "{:.3f}"),
        ("bleu", "BLEU", "{:.1f}"),
    ):
        value = f"LoRA+RAG {pair('LoRA+RAG', key, form)}; base {pair('base', key, form)} (en / bn)"
        metrics.append(Metric(name, value, held))
    body = [
        "Base vs fine-tuned (LoRA), each with and without retrieval, on the held-out splits of "
        "`data/sft` (known: trained exercises, unseen phrasings; unseen: exercises held out of "
        f"training), English and Bengali; seed {report['seed']}. Full tables and side-by-side "
        f"answers: [{_link(ctx, readme)}]({_link(ctx, readme)}).",
        "",
        "| configuration | perplexity " + " | ".join(short) + " | similarity unseen en / bn "
        "| BLEU unseen en / bn |",
        "|---|" + "---|" * (len(cells) + 2),
    ]
    for label in results:
        perplexities = [results[label][c]["perplexity"] for c in cells]
        shown = ["—" if v is None else f"{v:.2f}" for v in perplexities]
        body.append(
            f"| {label} | " + " | ".join(shown) + f" | {pair(label, 'similarity', '{:.3f}')} | "
            f"{pair(label, 'bleu', '{:.1f}')} |"
        )
    body.append("")
    for name in figures:
        body += _figure(name, name.removesuffix(".png"))
    return Outcome(metrics, body, source)


def sft_section(ctx: Context) -> Outcome:
    from omnicoach.evaluation.fine_tune import FineTuneEvaluation, write_report

    per_cell, perplexity_per_cell = (2, 3) if ctx.quick else (24, 60)
    evaluation = FineTuneEvaluation(
        ctx.registry,
        ctx.settings,
        REPO / "data" / "sft",
        log=ctx.log,
        progress=ctx.progress,
        max_new_tokens=48 if ctx.quick else None,
    )
    report = evaluation.run(per_cell, perplexity_per_cell, seed=0)
    write_report(report, ctx.out)
    return _sft_outcome(ctx, report, "rerun", ctx.out / "README.md")


def sft_reuse(ctx: Context) -> Outcome:
    path = REPORTS / "sft" / "results.json"
    report = json.loads(path.read_text())
    return _sft_outcome(ctx, report, _from(path), REPORTS / "sft" / "README.md")


# --- facts: answers a coach can stand behind ------------------------------------------------------


def _facts_outcome(ctx: Context, report: dict, source: str, questions: str) -> Outcome:
    from omnicoach.evaluation.facts import headline, markdown_report

    metrics = []
    for config in report["configs"]:
        for lang, what in (("en", "English"), ("bn", "Bengali")):
            figures = headline(config, lang)
            metrics.append(
                Metric(
                    f"fact accuracy, {what}, {config['mode']}, {config['model']}",
                    _pct(figures["fact accuracy"]),
                    "yes (held-out questions)",
                )
            )
        overall = headline(config, "overall")
        metrics.append(
            Metric(
                f"honest refusal of unknown exercises, {config['mode']}, {config['model']}",
                _pct(overall["honest refusal"]),
                "yes (held-out questions)",
            )
        )
    return Outcome(metrics, markdown_report(report, questions), source)


def facts_section(ctx: Context) -> Outcome:
    from omnicoach.assistant import Assistant
    from omnicoach.evaluation import facts

    items = facts.load_questions(facts.QUESTIONS)
    configs = facts.CONFIGS
    if ctx.quick:  # a few questions of every kind, the default configuration only
        items, configs = items[::40], configs[:1]
    assistant = Assistant(ctx.settings, ctx.registry)
    evaluation = facts.FactEvaluation(assistant, items, ctx.log, ctx.progress)
    report = evaluation.run(configs, facts.GENERATIVE_EVERY)
    questions = str(facts.QUESTIONS.relative_to(REPO))
    facts.write_report(report, ctx.out, questions)
    return _facts_outcome(ctx, report, "rerun", questions)


def facts_reuse(ctx: Context) -> Outcome:
    path = REPORTS / "facts" / "results.json"
    report = json.loads(path.read_text())
    return _facts_outcome(ctx, report, _from(path), "data/fact-questions/test.jsonl")


# --- vlm: questions about a picture --------------------------------------------------------------


def _vlm_outcome(ctx: Context, report: dict, source: str, folder: Path) -> Outcome:
    vlm, served = report["vlm"], report["served"]
    kinds = [
        ("name, English q.", lambda r: r["name_accuracy"].get("en", {}).get("accuracy")),
        ("name, Bengali q.", lambda r: r["name_accuracy"].get("bn", {}).get("accuracy")),
        ("Bengali script", lambda r: r["bengali_script_share"]),
        ("Bengali name", lambda r: r["bengali_name_accuracy"]),
        ("how: name", lambda r: r["how_name_accuracy"]),
        ("how: steps", lambda r: r["how_step_recall"]),
    ]
    plot = bar_chart(
        ctx.out / "accuracy.png",
        [k for k, _ in kinds],
        {"VLM alone": [f(vlm) for _, f in kinds], "served": [f(served) for _, f in kinds]},
        ctx.title("Vision model: accuracy per kind of question (held-out pictures)"),
        "share",
        percent=True,
    )
    n = vlm["name_accuracy"]["all"]["n"]
    held = f"{n} held-out rendered pictures ({report['exercises']} exercises, test seeds)"
    examples = sorted(p.name for p in folder.glob("example-*.png"))
    if folder != ctx.out:  # read from an existing report: its pictures come along
        for name in examples:
            shutil.copy2(folder / name, ctx.out / name)
    readme = folder / "README.md"
    body = [
        f"Model `{report['model']}` asked about held-out rendered images "
        f"(`{report['images']}`), greedy, alone and as served with grounding "
        f"(the model names, the knowledge base answers). Full report, confusions and answers: "
        f"[{_link(ctx, readme)}]({_link(ctx, readme)}).",
        "",
        "| kind of question | VLM alone | served |",
        "|---|---|---|",
    ]
    body += [f"| {k} | {_pct(f(vlm))} | {_pct(f(served))} |" for k, f in kinds]
    body += [
        f"| name, all questions (n {n}) | {_pct(vlm['name_accuracy']['all']['accuracy'])} | "
        f"{_pct(served['name_accuracy']['all']['accuracy'])} |",
        "",
        f"Baselines: no image (words only) {_pct(report['no_image_accuracy']['all']['accuracy'])};"
        f" nearest neighbour on the same features {_pct(report['nearest_neighbour_accuracy'])}. "
        '"how: steps" is the share of the knowledge base\'s steps an answer gives.',
        "",
        *_figure(plot, "accuracy per kind of question"),
    ]
    body += [f"![example {i}]({name}) " for i, name in enumerate(examples, 1)] + [""]
    metrics = [
        Metric(
            "VQA exercise-name accuracy, served (VLM alone)",
            f"{_pct(served['name_accuracy']['all']['accuracy'])} "
            f"({_pct(vlm['name_accuracy']['all']['accuracy'])})",
            held,
        ),
        Metric(
            '"how do I do it?": share of the steps given, served',
            _pct(served["how_step_recall"]),
            held,
        ),
    ]
    return Outcome(metrics, body, source)


def vlm_section(ctx: Context) -> Outcome:
    from omnicoach.assistant import Assistant
    from omnicoach.evaluation.vision import VisionEvaluation, write_report

    images = REPO / "data" / "exercise-images"
    registry = ctx.registry
    evaluation = VisionEvaluation(Assistant(ctx.settings, registry), images)
    if ctx.quick:
        report = evaluation.run(2, 1, seed=0, exercises=QUICK_EXERCISES)
    else:  # the README's measured setting
        report = evaluation.run(4, 1, seed=0)
    write_report(report, images, ctx.out)
    return _vlm_outcome(ctx, report, "rerun", ctx.out)


def vlm_reuse(ctx: Context) -> Outcome:
    path = REPORTS / "vlm" / "results.json"
    return _vlm_outcome(ctx, json.loads(path.read_text()), _from(path), REPORTS / "vlm")


# --- imagegen: CLIP score, FID -------------------------------------------------------------------


def _imagegen_outcome(ctx: Context, report: dict, source: str, folder: Path) -> Outcome:
    samplers = report["samplers"]
    real, through = report["real"], report["through_autoencoder"]
    names = [f"{s['sampler'].replace('dpm-solver++', 'DPM++')} {s['steps']}" for s in samplers]
    categories = [*names, "through AE", "real"]

    def values(key: str) -> list[float]:
        return [s[key] for s in samplers] + [through[key], real[key]]

    recognised = bar_chart(
        ctx.out / "recognised.png",
        categories,
        {"recognised": values("recognised")},
        ctx.title("Image generator: requested exercise recognised"),
        "recognised",
        percent=True,
    )
    clip = bar_chart(
        ctx.out / "clip_score.png",
        categories,
        {"CLIP score": values("clip_score")},
        ctx.title("CLIP score (alignment model) per sampler"),
        "CLIP score",
    )
    fid = bar_chart(
        ctx.out / "fid.png",
        [*names, "through AE", "real: train\nvs test"],
        {"FID": [s["fid"] for s in samplers] + [through["fid"], real["fid_train_vs_test"]]},
        ctx.title("FID on EfficientNet-Lite0 features (lower is better)"),
        "FID",
    )
    if folder != ctx.out and (folder / "samples.png").is_file():
        shutil.copy2(folder / "samples.png", ctx.out / "samples.png")
    held = (
        f"{report['exercises']} exercises × held-out wordings = {report['images_per_sampler']} "
        "prompts; test renders"
    )
    readme = folder / "README.md"
    body = [
        f"The image generator (`{report.get('model', '?')}`), guidance "
        f"{report['guidance_scale']}, seed {report['seed']}, on prompts in held-out wordings; "
        f"FID on {report['features']} against `{report['real_renders']}` test renders (not "
        f"comparable with published FIDs). Recognised: the alignment model picks the requested "
        f"exercise among the {report['exercises']} asked for. Full report: "
        f"[{_link(ctx, readme)}]({_link(ctx, readme)}).",
        "",
        "| sampler | UNet evaluations | s per image | recognised | CLIP score (ratio) | FID |",
        "|---|---|---|---|---|---|",
    ]
    for name, s in zip(names, samplers, strict=True):
        body.append(
            f"| {name} | {s['unet_evaluations']} | {s['seconds_per_image']:.3f} | "
            f"{_pct(s['recognised'])} | {s['clip_score']:.1f} ({s['clip_score_ratio']:.2f}) | "
            f"{s['fid']:.1f} |"
        )
    body += [
        f"| real through the autoencoder | | | {_pct(through['recognised'])} | "
        f"{through['clip_score']:.1f} | {through['fid']:.1f} |",
        f"| real test renders | | | {_pct(real['recognised'])} | {real['clip_score']:.1f} | "
        f"{real['fid_train_vs_test']:.1f} (train vs test) |",
        "",
        *_figure(recognised, "recognised per sampler"),
        *_figure(clip, "CLIP score per sampler"),
        *_figure(fid, "FID per sampler"),
    ]
    if (ctx.out / "samples.png").is_file():
        body += _figure("samples.png", "samples: one row per sampler")
    # The headline: the server's default sampler where it was measured.
    default = [s for s in samplers if (s["sampler"], s["steps"]) == ("dpm-solver++", 20)]
    shown = (default or samplers)[0]
    label = f"{shown['sampler']} {shown['steps']}"
    metrics = [
        Metric(f"image: exercise recognised ({label})", _pct(shown["recognised"]), held),
        Metric(
            f"CLIP score ({label}; ratio to real renders)",
            f"{shown['clip_score']:.1f} ({shown['clip_score_ratio']:.2f})",
            held,
        ),
        Metric(
            "FID per sampler (" + ", ".join(names) + ")",
            " / ".join(f"{s['fid']:.1f}" for s in samplers),
            held,
        ),
    ]
    return Outcome(metrics, body, source)


def imagegen_section(ctx: Context) -> Outcome:
    from omnicoach.evaluation.image_generation import ImageGenEvaluation, write_report
    from omnicoach.models.alignment import load_alignment
    from omnicoach.models.image_encoder import ImageEncoder

    registry = ctx.registry
    generator = registry.image_generator()
    alignment = REPO / "artifacts" / "alignment"
    aligner = load_alignment(alignment, ImageEncoder(grid=1), registry.embedder())
    evaluation = ImageGenEvaluation(
        generator.pipeline,
        aligner,
        REPO / "data" / "drawing-images",
        exercises=QUICK_DRAWINGS if ctx.quick else None,
    )
    report = evaluation.run(seed=0)
    report["model"] = generator.name
    write_report(report, ctx.out)
    return _imagegen_outcome(ctx, report, "rerun", ctx.out)


def imagegen_reuse(ctx: Context) -> Outcome:
    path = REPORTS / "imagegen" / "results.json"
    return _imagegen_outcome(ctx, json.loads(path.read_text()), _from(path), REPORTS / "imagegen")


# --- pretrain: from random weights against SmolLM2 -----------------------------------------------


def _pretrain_outcome(ctx: Context, folder: Path, source: str) -> Outcome:
    report = json.loads((folder / "report.json").read_text())
    manifest = json.loads((folder / "manifest.json").read_text())
    for name in ("loss.png", "report.md"):
        if folder != ctx.out and (folder / name).is_file():
            shutil.copy2(folder / name, ctx.out / name)
    fit = report.get("fit", {})
    needed = fit.get("tokens_needed") if fit.get("ok") else None
    reached = report.get("target_reached")
    held = (
        f"knowledge-base text of {len(report['heldout_exercises'])} exercises never trained on "
        f"({report['heldout_tokens']:,} tokens)"
    )
    reference = Path(report["reference_model"]).name
    readme = folder / "report.md"
    body = [
        f"A {report['parameters'] / 1e6:.1f} M-parameter Llama trained from random weights: "
        f"{report['steps']} steps, {report['tokens']:,} tokens, {report['training_seconds']:.0f} "
        f"s of training ({manifest.get('wall_time_s', 0):.0f} s wall), by `{manifest['command']}`"
        f" on {manifest['created'][:10]}. Full report: "
        f"[{_link(ctx, readme)}]({_link(ctx, readme)}).",
        "",
        "| | |",
        "|---|---|",
        f"| initial loss → target | {report['initial_loss']:.3f} → {report['target_loss']:.3f} |"
        if report.get("target_loss") is not None
        else f"| initial loss | {report['initial_loss']:.3f} |",
        "| target reached | "
        + (f"step {reached['step']}, {reached['tokens']:,} tokens" if reached else "no")
        + " |",
        f"| held-out loss, this model | {report['heldout_loss']:.3f} nats/token |",
        f"| held-out loss, {reference} | {report['reference_heldout_loss']:.3f} nats/token |",
        f"| gap | {report['gap_nats']:.3f} |",
        "| tokens still needed (power-law fit) | "
        + (f"{needed:,.0f}" if needed is not None else "no fit")
        + " |",
        "",
    ]
    if (ctx.out / "loss.png").is_file():
        body += _figure("loss.png", "loss curve")
    metrics = [
        Metric(
            "pretraining: held-out loss, this model vs SmolLM2-135M",
            f"{report['heldout_loss']:.3f} vs {report['reference_heldout_loss']:.3f} nats/token "
            f"(gap {report['gap_nats']:.3f})",
            held,
        ),
        Metric(
            "pretraining: loss −1 nat reached",
            f"step {reached['step']} ({reached['seconds']:.0f} s)" if reached else "not reached",
            "train loss",
        ),
    ]
    return Outcome(metrics, body, source)


def pretrain_section(ctx: Context) -> Outcome:
    from omnicoach.training.pretrain import PretrainConfig, train_pretrain

    run = ctx.settings.data_dir / "train" / "pretrain-eval"  # checkpoints stay out of reports
    if ctx.quick:  # a tiny model for a few steps: the path, not the figures
        config = PretrainConfig(
            out=run, resume=False, max_steps=12, max_minutes=2, hidden_size=64, num_layers=2,
            intermediate_size=128, synthetic_workers=0, synthetic_share=0.0, eval_every=4,
            stop_at_target=False, model_cache=ctx.settings.model_cache_dir,
        )  # fmt: skip
    else:  # as reports/pretrain was made: benchmarks/pretrain.py --minutes 10 --full-budget
        config = PretrainConfig(
            out=run,
            resume=False,
            max_minutes=10,
            stop_at_target=False,
            model_cache=ctx.settings.model_cache_dir,
        )
    command = "omnicoach eval all --only pretrain --rerun pretrain"
    train_pretrain(config, log=ctx.log, command=command)
    for name in ("report.json", "report.md", "manifest.json", "loss.png", "loss.csv"):
        shutil.copy2(run / name, ctx.out / name)
    return _pretrain_outcome(ctx, ctx.out, "rerun")


def pretrain_reuse(ctx: Context) -> Outcome:
    folder = REPORTS / "pretrain"
    manifest = json.loads((folder / "manifest.json").read_text())
    return _pretrain_outcome(ctx, folder, _from(folder, manifest["created"][:10]))


# --- the sections and the report -----------------------------------------------------------------

SECTIONS: dict[str, Section] = {
    s.name: s
    for s in (
        Section(
            "wer", "Speech to text: word error rate",
            "omnicoach eval all --only wer", "~20 s", wer_section,
        ),
        Section(
            "spoken-names", "Speech to text: exercise names heard",
            "omnicoach eval spoken-names", "~25 min", spoken_names_section, spoken_names_reuse,
        ),
        Section(
            "router", "Prompt router: accuracy and F1",
            "omnicoach eval all --only router", "~10 s", router_section, router_reuse,
        ),
        Section(
            "sft", "Fine-tune and retrieval: perplexity, semantic similarity, BLEU",
            "omnicoach eval sft", "54 min", sft_section, sft_reuse,
        ),
        Section(
            "facts", "Answers about the knowledge base's exercises: fact accuracy",
            "omnicoach eval facts", "~30 min", facts_section, facts_reuse,
        ),
        Section(
            "vlm", "Vision model: questions about a picture (VQA)",
            "omnicoach eval vlm --per-exercise 4 --how-per-exercise 1", "9 min",
            vlm_section, vlm_reuse,
        ),
        Section(
            "imagegen", "Image generator: recognised, CLIP score, FID",
            "omnicoach eval imagegen", "13 min", imagegen_section, imagegen_reuse,
        ),
        Section(
            "pretrain", "Pretraining from scratch against SmolLM2",
            "omnicoach eval all --only pretrain --rerun pretrain", "10.5 min",
            pretrain_section, pretrain_reuse,
        ),
    )
}  # fmt: skip


def parse_names(text: str | None, what: str) -> list[str]:
    """Section names from "a,b"; an unknown one is a ValueError naming the known ones."""
    names = [n.strip() for n in (text or "").split(",") if n.strip()]
    unknown = [n for n in names if n not in SECTIONS]
    if unknown:
        raise ValueError(
            f"{what}: unknown section {', '.join(unknown)}; the sections are " + ", ".join(SECTIONS)
        )
    return names


def choose(only: str | None, skip: str | None, reuse: str | None, rerun: str | None):
    """(the sections to run in order, the ones read from their existing report)."""
    chosen = parse_names(only, "--only") or list(SECTIONS)
    left_out = set(parse_names(skip, "--skip"))
    names = [n for n in SECTIONS if n in chosen and n not in left_out]
    if not names:
        raise ValueError("no section left to run (--only and --skip leave none)")
    reused = set(parse_names(reuse, "--reuse")) - set(parse_names(rerun, "--rerun"))
    cannot = sorted(n for n in reused if SECTIONS[n].reuse is None)
    if cannot:
        raise ValueError(f"--reuse: {', '.join(cannot)} has no report to read; it always runs")
    return names, reused


def run_report(
    names: list[str],
    out: Path,
    *,
    quick: bool = False,
    reuse: set[str] = frozenset(),
    registry_factory: Callable[[], tuple] | None = None,
    log: Callable[[str], None] = print,
    command: str = "omnicoach eval all",
) -> list[SectionResult]:
    """Run NAMES in turn into OUT/<name>/ and write OUT/README.md (after every section)."""
    out = Path(out)
    where, reports = out.resolve(), REPORTS.resolve()
    if where == reports or (where.parent == reports and where.name in SECTIONS):
        raise ValueError(f"--out {out} would overwrite the sections' own reports: use a new folder")
    out.mkdir(parents=True, exist_ok=True)
    shared = Context(out, quick, log, registry_factory)
    results: list[SectionResult] = []
    started_at = datetime.now(UTC)
    from omnicoach.artifacts import code_commit

    code_at_start = code_commit() or "outside git"
    for number, name in enumerate(names, 1):
        section = SECTIONS[name]
        log(f"[{number}/{len(names)}] {section.title}")
        folder = out / name
        if folder.exists():
            shutil.rmtree(folder)  # nothing from an earlier run may pass for this one's
        folder.mkdir(parents=True)
        ctx = Context(folder, quick, log, shared._load)  # models load once, for every section
        use = section.reuse if name in reuse and section.reuse else section.run
        started = time.monotonic()
        try:
            outcome = use(ctx)
            result = SectionResult(name, section.title, section.command, "ok", 0.0, outcome)
        except Exception as exc:  # reported, and the other sections still run
            result = SectionResult(
                name, section.title, section.command, "failed", 0.0,
                error=f"{type(exc).__name__}: {exc}", traceback=traceback.format_exc(),
            )  # fmt: skip
        result.seconds = time.monotonic() - started
        if result.status == "failed":
            shutil.rmtree(folder, ignore_errors=True)  # nothing half-written stays behind
        results.append(result)
        done = "done" if result.status == "ok" else f"FAILED: {result.error}"
        log(f"[{number}/{len(names)}] {name}: {done} ({result.seconds:.1f} s)")
        write_markdown(
            results, names, out, quick=quick, command=command, started=started_at,
            code_at_start=code_at_start,
        )  # fmt: skip
    return results


def write_markdown(
    results: list[SectionResult],
    names: list[str],
    out: Path,
    *,
    quick: bool,
    command: str,
    started: datetime,
    code_at_start: str,
) -> Path:
    from omnicoach.artifacts import code_commit

    # The code that ran: its commit at the start, and at the end too when it changed meanwhile
    # (a long run may go on while the checkout moves on).
    code_now = code_commit() or "outside git"
    code = (
        code_at_start
        if code_now == code_at_start
        else f"{code_at_start} at the start, {code_now} when this was written"
    )

    total = sum(r.seconds for r in results)
    pending = [n for n in names if n not in {r.name for r in results}]
    lines = ["# Evaluation report" + (" — QUICK" if quick else ""), ""]
    if quick:
        lines += [
            f"> **{QUICK_LABEL}.** This run used small subsets to check that every evaluation "
            "runs end to end; its figures say nothing about the models. The real report: "
            "`omnicoach eval all` (README, Evaluation report).",
            "",
        ]
    lines += [
        f"Written by `{command}`, started {started:%Y-%m-%d %H:%M} UTC, code "
        f"{code}, {os.cpu_count()} CPU cores; "
        f"{total / 60:.1f} min for the sections below."
        + (f" Still to run: {', '.join(pending)}." if pending else ""),
        "",
        "Source: *rerun* means measured by this run"
        + (" (on quick subsets)" if quick else "")
        + "; *from …* means read from an earlier report, with its date.",
        "",
        "## Summary",
        "",
        "| section | metric | value | held-out set | source | time | reproduce |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in results:
        time_ = f"{r.seconds:.0f} s"
        if r.status == "failed":
            lines.append(
                f"| {r.name} | — | **failed**: {_cell(r.error)} | — | — | {time_} | `{r.command}` |"
            )
            continue
        source = r.outcome.source
        if quick and source == "rerun":
            source = "rerun, QUICK"
        for m in r.outcome.metrics:
            value = f"{m.value} (quick)" if quick and r.outcome.source == "rerun" else m.value
            lines.append(
                f"| {r.name} | {_cell(m.metric)} | {_cell(value)} | {_cell(m.held_out)} | "
                f"{_cell(source)} | {time_} | `{r.command}` |"
            )
    lines.append("")
    for number, r in enumerate(results, 1):
        section = SECTIONS[r.name]
        lines += [f"## {number}. {r.title}", ""]
        if r.status == "failed":
            lines += [
                f"**Failed** after {r.seconds:.1f} s: `{_cell(r.error)}`",
                "",
                "```",
                (r.traceback or "").rstrip(),
                "```",
                "",
            ]
            continue
        how = r.outcome.source if r.outcome.source != "rerun" else "rerun by this report"
        if quick and r.outcome.source == "rerun":
            how += f" — **QUICK** subset ({QUICK_LABEL})"
        lines += [
            f"*{how}; {r.seconds:.1f} s (a full run: {section.full_time}). Reproduce: "
            f"`{r.command}`; figures in [{r.name}/]({r.name}/).*",
            "",
        ]
        lines += _relative_figures(r.outcome.body, r.name)
        lines.append("")
    path = out / "README.md"
    temporary = path.with_suffix(".md.tmp")
    temporary.write_text("\n".join(lines))
    temporary.replace(path)  # never a half-written report
    return path


def _relative_figures(body: list[str], folder: str) -> list[str]:
    """The section's lines with its figure paths made relative to OUT/ (not OUT/<section>/);
    links (not images) that already start with ../ or a folder stay as they are."""
    figure = re.compile(r"!\[([^\]]*)\]\(([^)/]+\.png)\)")
    return [figure.sub(rf"![\1]({folder}/\2)", line) for line in body]
