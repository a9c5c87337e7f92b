"""The fact evaluation's bookkeeping (evaluation/facts.py) with a scripted assistant: which
questions each configuration answers, and that the report is written after each one."""

from omnicoach.assistant.events import Answering, Done, TextDelta
from omnicoach.evaluation.facts import FactEvaluation, markdown_report
from omnicoach.knowledge.answers import answer
from omnicoach.knowledge.base import load_entries, load_vocabulary

PUSH_UP = {e["id"]: e for e in load_entries()}["push-up"]


class ScriptedAssistant:
    """Answers every question with the push-up entry's muscles (in the question's language);
    records what it was asked and in which answer mode."""

    def __init__(self):
        self.asked: list[tuple[str, str]] = []

    def turn(self, request):
        question = request.messages[-1].parts[0].text
        self.asked.append((request.answer_mode, question))
        lang = "bn" if any("\u0980" <= ch <= "\u09ff" for ch in question) else "en"
        yield Answering(request.model, None)
        yield TextDelta(answer(PUSH_UP, "muscles", lang, load_vocabulary()))
        yield Done("stop")


def items(count: int) -> list[dict]:
    return [
        {
            "id": f"q{i}",
            "lang": "en",
            "kind": "single",
            "turns": [f"Which muscles does a push-up work? ({i})"],
            "exercise": "push-up",
            "aspects": ["muscles"],
        }
        for i in range(count)
    ]


def test_generative_answers_are_asked_one_question_in_n_and_grounded_ones_all():
    assistant = ScriptedAssistant()
    written = []
    evaluation = FactEvaluation(assistant, items(7), log=lambda *_: None)
    configs = [("grounded", "m"), ("generative", "m")]
    report = evaluation.run(
        configs, generative_every=3, done=lambda r: written.append(len(r["configs"]))
    )

    modes = [mode for mode, _ in assistant.asked]
    assert modes.count("grounded") == 7 and modes.count("generative") == 3  # q0, q3, q6
    assert [c["n"] for c in report["configs"]] == [7, 3]
    assert written == [1, 2]  # the report after each configuration
    grounded, generative = report["configs"]
    assert grounded["summary"]["en"]["fact_accuracy"] == 1.0
    assert grounded["sample_summary"]["overall"]["n"] == 3
    assert generative["sample_summary"]["overall"]["n"] == 3
    text = "\n".join(markdown_report(report, "test.jsonl"))
    assert "Side by side on the questions every configuration answered (one in 3" in text


def test_without_a_sample_there_is_one_table():
    evaluation = FactEvaluation(ScriptedAssistant(), items(2), log=lambda *_: None)
    report = evaluation.run([("generative", "m")])
    assert report["configs"][0]["n"] == 2
    assert "Side by side" not in "\n".join(markdown_report(report, "test.jsonl"))
