"""The fine-tuning conversations built from the knowledge base, and their held-out splits."""

from omnicoach.data.sft_dataset import QUESTIONS, build


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
