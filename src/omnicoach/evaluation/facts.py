"""Fact accuracy: do answers about the knowledge base's exercises state the right facts and no
wrong one — on questions phrased nowhere in the fine-tuning data?

    omnicoach eval facts [--questions data/fact-questions/test.jsonl] [--out reports/facts]
                         [--configs grounded:smollm2-135m-yoga,...] [--limit N]
                         [--generative-every 3]

Each item of the question set (data/fact-questions/README.md) is asked through the assistant —
the pipeline every door uses — turn by turn, with the assistant's own answers in between, and
the answer to its last turn is scored by evaluation/fact_metric.py. Configurations: who writes
the facts (answer_mode "grounded" or "generative") × the chat model (the fine-tune or its
base). Greedy decoding, the server's settings otherwise; answers run a few at a time, as the
server's clients would, so the engine batches them.

The set is held out: its phrasings appear nowhere in data/sft, and the assistant's rules were
tuned on data/fact-questions/dev.jsonl only.

Generative answers are slow on a small CPU: the chat model reads the entry's passages (a
Bengali one is ~800 tokens) and writes up to the server's token limit, ~20 s a Bengali answer
on 2 cores. --generative-every N (3 unless told) answers every Nth question for them (a
systematic sample: the set is ordered by language and kind, so every language and kind keeps
about 1/N of its questions), and the report compares all configurations on that sample too.
The report is rewritten after each configuration, so a long run keeps what it finished.
"""

import json
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from omnicoach.assistant import Message, TurnRequest, collect
from omnicoach.config import REPO
from omnicoach.evaluation.fact_metric import FactKB, score, summarise
from omnicoach.knowledge.base import load_entries, load_vocabulary
from omnicoach.models.registry import BASE_CHAT_MODEL, TUNED_CHAT_MODEL
from omnicoach.models.sampling import SamplingParams

QUESTIONS = REPO / "data" / "fact-questions" / "test.jsonl"
CONFIGS = [
    ("grounded", TUNED_CHAT_MODEL),
    ("grounded", BASE_CHAT_MODEL),
    ("generative", TUNED_CHAT_MODEL),
    ("generative", BASE_CHAT_MODEL),
]
AT_ONCE = 4  # conversations answered concurrently
GENERATIVE_EVERY = 3  # generative answers for one question in 3 (see above)


def load_questions(path: Path = QUESTIONS) -> list[dict]:
    return [json.loads(line) for line in Path(path).read_text().splitlines() if line.strip()]


def parse_configs(text: str | None) -> list[tuple[str, str]]:
    """ "grounded:model,generative:model" → [(mode, model)]; None: every configuration."""
    if not text:
        return list(CONFIGS)
    configs = []
    for part in text.split(","):
        mode, _, model = part.strip().partition(":")
        if mode not in ("grounded", "generative") or not model:
            raise ValueError(
                f"{part!r}: write a configuration as grounded:MODEL or generative:MODEL"
            )
        configs.append((mode, model))
    return configs


class FactEvaluation:
    def __init__(self, assistant, items: list[dict], log=print, progress=None):
        self.assistant, self.items, self.log = assistant, items, log
        self.progress = progress or (lambda iterable, **_: iterable)
        self.kb = FactKB(load_entries(), load_vocabulary())

    def answer(self, item: dict, mode: str, model: str) -> dict:
        """ITEM's turns asked one by one; the last answer and what came with it."""
        history: list[Message] = []
        started = time.monotonic()
        for turn in item["turns"]:
            history.append(Message.text("user", turn))
            request = TurnRequest(
                list(history),
                model=model,
                params=SamplingParams(temperature=0.0),
                answer_mode=mode,
            )
            answer = collect(self.assistant.turn(request))
            history.append(Message.text("assistant", answer.text))
        return {
            "answer": answer.text,
            "sources": [s["id"] for s in answer.sources],
            "seconds": round(time.monotonic() - started, 3),
        }

    def run(
        self, configs: list[tuple[str, str]], generative_every: int = 1, done=lambda report: None
    ) -> dict:
        """Each configuration in turn; DONE(report so far) after each."""
        report = {"questions": len(self.items), "generative_every": generative_every, "configs": []}
        for mode, model in configs:
            items = self.items[::generative_every] if mode == "generative" else self.items
            self.log(f"{mode} answers, {model}: {len(items)} conversations")
            with ThreadPoolExecutor(AT_ONCE) as pool:
                jobs = [pool.submit(self.answer, item, mode, model) for item in items]
                answers = [job.result() for job in self.progress(jobs, desc=f"{mode} {model}")]
            scored = [
                (item, score(item, a["answer"], self.kb))
                for item, a in zip(items, answers, strict=True)
            ]
            rows = [
                {
                    "id": item["id"],
                    "lang": item["lang"],
                    "kind": item["kind"],
                    "turns": item["turns"],
                    **answer,
                    "correct": result.correct,
                    "wrong": result.wrong,
                    "missing": result.missing,
                }
                for (item, result), answer in zip(scored, answers, strict=True)
            ]
            sample = {item["id"] for item in self.items[::generative_every]}
            report["configs"].append(
                {
                    "mode": mode,
                    "model": model,
                    "n": len(items),
                    "summary": summarise(scored),
                    # The questions every configuration answered, for the side-by-side table.
                    "sample_summary": summarise([p for p in scored if p[0]["id"] in sample]),
                    "answers": rows,
                }
            )
            done(report)
        return report


def _pct(value) -> str:
    return "—" if value is None else f"{value:.1%}"


def headline(config: dict, lang: str, summary: str = "summary") -> dict:
    """The figures the targets are set on, for LANG ("en", "bn", "overall"), of SUMMARY (all
    the questions the configuration answered, or "sample_summary")."""
    figures = config[summary][lang]
    return {
        "fact accuracy": figures["fact_accuracy"],
        "honest refusal": figures["refusal_rate"],
        "asks which one": figures["clarification_rate"],
        "safety first": figures["safety_first_rate"],
        "cautions carried": figures["cautions_carried"],
    }


def _table(configs: list[dict], summary: str) -> list[str]:
    lines = [
        "| answers | model | questions | fact accuracy en | fact accuracy bn | "
        "honest refusal en / bn | asks which one | safety first | cautions carried |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for config in configs:
        en, bn, all_ = (headline(config, lang, summary) for lang in ("en", "bn", "overall"))
        lines.append(
            f"| {config['mode']} | {config['model']} | {config[summary]['overall']['n']} | "
            f"{_pct(en['fact accuracy'])} | {_pct(bn['fact accuracy'])} | "
            f"{_pct(en['honest refusal'])} / {_pct(bn['honest refusal'])} | "
            f"{_pct(all_['asks which one'])} | {_pct(all_['safety first'])} | "
            f"{_pct(all_['cautions carried'])} |"
        )
    return lines


def markdown_report(report: dict, questions: str) -> list[str]:
    every = report.get("generative_every", 1)
    lines = [
        f"{report['questions']} held-out questions (`{questions}`), each asked through the "
        "assistant, greedy; scored by `evaluation/fact_metric.py`. *Fact accuracy*: answers "
        "about a knowledge-base exercise (single, multi-aspect, follow-up, switch, condition) "
        "whose stated muscles, steps and cautions are all in the entry and that give what was "
        "asked. *Honest refusal*: an exercise with no entry is said to have none. *Asks which "
        "one*: an ambiguous name. *Safety first*: a warning sign is answered with stop / see a "
        "professional first. *Cautions carried*: a question naming a condition gets the "
        "entry's cautions.",
        "",
        *_table(report["configs"], "summary"),
    ]
    if every > 1:
        lines += [
            "",
            f"Side by side on the questions every configuration answered (one in {every}: "
            "generative answers were asked only those):",
            "",
            *_table(report["configs"], "sample_summary"),
        ]
    lines += ["", "Per kind of question (all languages):", ""]
    kinds = sorted({k for c in report["configs"] for k in c["summary"]["overall"]["per_kind"]})
    lines += [
        "| answers | model | " + " | ".join(kinds) + " |",
        "|---|---|" + "---|" * len(kinds),
    ]
    for config in report["configs"]:
        per_kind = config["summary"]["overall"]["per_kind"]
        cells = [
            f"{_pct(per_kind[k]['accuracy'])} (n {per_kind[k]['n']})" if k in per_kind else "—"
            for k in kinds
        ]
        lines.append(f"| {config['mode']} | {config['model']} | " + " | ".join(cells) + " |")
    for config in report["configs"]:
        failed = [a for a in config["answers"] if not a["correct"]]
        lines += ["", f"### {config['mode']}, {config['model']}: {len(failed)} not correct", ""]
        for answer in failed[:8]:
            said = answer["answer"][:240].replace("\n", " / ")
            why = "; ".join([*answer["wrong"], *answer["missing"]])[:200]
            lines.append(
                f"- `{answer['id']}` ({answer['kind']}) {' → '.join(answer['turns'])} — {why}  \n"
                f"  > {said}"
            )
    return lines


def write_report(report: dict, out: Path, questions: str) -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_text(json.dumps(report, indent=1, ensure_ascii=False) + "\n")
    body = ["# Fact accuracy on held-out questions", "", *markdown_report(report, questions)]
    (out / "README.md").write_text("\n".join(body) + "\n")
