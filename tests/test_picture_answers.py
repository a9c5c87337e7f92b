"""Answers about a picture: the shipped vision model names the exercise in held-out pictures,
the knowledge base gives the facts (knowledge/picture_answers.py)."""

import pytest

from omnicoach.data.exercise_images import TEST_SEEDS, render_exercise
from omnicoach.knowledge.base import load_entries
from omnicoach.knowledge.picture_answers import MIN_ASPECT_SCORE
from omnicoach.models.sampling import SamplingParams
from omnicoach.models.vision_language import IMAGE_MARKER

ENTRIES = {entry["id"]: entry for entry in load_entries()}


@pytest.fixture(scope="module")
def answers(registry):
    return registry.picture_answers()


def about_picture(question: str) -> list[dict]:
    return [{"role": "user", "content": f"{IMAGE_MARKER}\n{question}"}]


@pytest.mark.parametrize(
    ("question", "aspect"),
    [
        ("which yoga pose is this", "what"),
        ("how do I perform this?", "how"),
        ("which muscles does this target", "muscles"),
        ("What mistakes should I avoid?", "mistakes"),
        ("Is it safe for my knees?", "cautions"),
        ("is there a simpler version", "beginner"),
        ("why is this good for me", "benefits"),
        ("এটা কি নিরাপদ?", "cautions"),
        ("এটার উপকারিতা কী?", "benefits"),
    ],
)
def test_new_wordings_find_the_aspect_they_ask_about(answers, question, aspect):
    found, score = answers.aspect(question)
    assert found == aspect and score >= MIN_ASPECT_SCORE


@pytest.mark.parametrize(
    "question", ["What colour is the shirt?", "I have back pain, can I do this?", "write a poem"]
)
def test_questions_the_knowledge_base_does_not_answer_are_left_to_the_model(answers, question):
    assert answers.aspect(question)[1] < MIN_ASPECT_SCORE
    picture = render_exercise("boat-pose", TEST_SEEDS[0])
    assert answers.answer(about_picture(question), picture) is None


def test_the_steps_are_the_knowledge_bases_for_the_exercise_the_model_names(answers):
    picture = render_exercise("barbell-bench-press", TEST_SEEDS[1])
    answer = answers.answer(about_picture("What is this exercise and how do I do it?"), picture)
    assert answer.exercise_id == "barbell-bench-press", answer.identified_as
    steps = ENTRIES["barbell-bench-press"]["steps"]["en"]
    assert answer.text.startswith("This is Barbell Bench Press.\n1. " + steps[0])
    assert all(f"{i}. {step}" in answer.text for i, step in enumerate(steps, 1))
    assert answer.text.endswith("[1]")
    assert [s.id for s in answer.sources] == ["kb:barbell-bench-press:en:steps"]


def test_a_bengali_question_gets_the_bengali_name_and_facts(answers):
    picture = render_exercise("boat-pose", TEST_SEEDS[2])
    answer = answers.answer(about_picture("এটা কোন পেশিতে কাজ করে?"), picture)
    assert answer.exercise_id == "boat-pose", answer.identified_as
    assert answer.text.startswith("এটি Boat Pose — নৌকাসন (বোট পোজ)।")
    assert answer.sources[0].id == "kb:boat-pose:bn:about"


def test_a_follow_up_uses_the_named_picture_without_asking_the_model_again(answers, monkeypatch):
    picture = render_exercise("tree-pose", TEST_SEEDS[4])
    first = answers.answer(about_picture("What exercise is this?"), picture)
    assert first.text.startswith("This is Tree Pose (Vrksasana).")
    monkeypatch.setattr(answers.vision, "stream", None)  # a second generation would fail
    messages = [
        *about_picture("What exercise is this?"),
        {"role": "assistant", "content": first.text},
        {"role": "user", "content": "What muscles does it work?"},
    ]
    follow_up = answers.answer(messages, picture)
    primary = ENTRIES["tree-pose"]["primary_muscles"]
    assert follow_up.text.startswith(f"Tree Pose mainly works the {primary[0]}")
    assert follow_up.exercise_id == "tree-pose"


def test_a_picture_the_knowledge_base_cannot_answer_about_is_encoded_once(answers, monkeypatch):
    """Naming the exercise, then the vision model's own answer (the fallback): one encoding."""
    vision = answers.vision
    picture = render_exercise("boat-pose", TEST_SEEDS[5])
    encoded = []
    encode = vision.encoder.encode
    monkeypatch.setattr(
        vision.encoder, "encode", lambda images: encoded.append(1) or encode(images)
    )
    question = about_picture("Can I do this on a boat?")  # no aspect the knowledge base has
    assert answers.answer(question, picture) is None
    answer = "".join(vision.stream(question, picture, SamplingParams(max_tokens=8, temperature=0)))
    assert answer.strip() and len(encoded) == 1
    # Other pixels are another picture.
    vision.image_input(render_exercise("boat-pose", TEST_SEEDS[6]))
    assert len(encoded) == 2
