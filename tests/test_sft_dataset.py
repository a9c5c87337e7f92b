"""The fine-tuning conversations built from the knowledge base, and their held-out splits."""

from omnicoach.data.sft_dataset import QUESTIONS, build, ground_some
from omnicoach.knowledge.base import Passage


def test_the_splits_hold_out_what_they_say():
    splits = build()
    assert all(splits[name] for name in splits)
    unseen = {row["exercise"] for row in splits["test_unseen"]}
    seen = {row["exercise"] for name in ("train", "validation") for row in splits[name]}
    assert unseen and not unseen & seen  # wholly held-out exercises
    assert {row["exercise"] for row in splits["test_known"]} <= seen
    trained = {row["messages"][0]["content"] for row in splits["train"]}
    assert not trained & {row["messages"][0]["content"] for row in splits["test_known"]}
    for name in splits:
        assert {row["lang"] for row in splits[name]} == {"en", "bn"}
    assert any(len(row["messages"]) > 2 for row in splits["train"])  # multi-turn ones too


def test_answers_come_from_the_entry_and_are_concise():
    row = next(r for r in build()["train"] if r["aspect"] == "how" and r["lang"] == "en")
    answer = row["messages"][1]["content"]
    assert answer.startswith("1. ") and len(answer) < 1200
    assert all(len(phrasings) >= 3 for lang in QUESTIONS.values() for phrasings in lang.values())


def test_grounded_conversations_carry_sources_and_cite_their_exercise():
    rows = [r for r in build()["train"] if r["lang"] == "en"][:40]
    steps = Passage("kb:{}:en:steps", "", "1. Do it.", "en", "knowledge base")

    def retrieve(messages):  # another exercise first, then the right one
        other = Passage("kb:some-other-pose:en:about", "", "Other.", "en", "knowledge base")
        row = next(r for r in rows if r["messages"][:-1] == messages)
        right = Passage(steps.id.format(row["exercise"]), "", "1. Do it.", "en", "kb")
        return [other, right]

    grounded = ground_some(rows, retrieve, fraction=0.5, seed=0)
    assert len(grounded) == len(rows)
    changed = [g for g, r in zip(grounded, rows, strict=True) if g != r]
    assert 10 <= len(changed) <= 30  # about half, seeded
    for row in changed:
        question, answer = row["messages"][-2]["content"], row["messages"][-1]["content"]
        assert question.startswith("Use these numbered sources") and "[2] 1. Do it." in question
        assert answer.endswith(" [2]")  # the passage about its own exercise
    nothing = ground_some(rows, lambda messages: [], fraction=1.0, seed=0)
    assert [r["messages"] for r in nothing] == [r["messages"] for r in rows]
