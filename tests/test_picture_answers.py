"""Answers about a picture, through the assistant: the shipped vision model names the
exercise in held-out pictures, the knowledge base gives the facts (assistant/answering.py)."""

import pytest

from omnicoach.assistant import Assistant, Message, Picture, Text, TurnRequest, collect
from omnicoach.data.exercise_images import TEST_SEEDS, render_exercise
from omnicoach.images.decode import encode_png
from omnicoach.knowledge.base import load_entries
from omnicoach.models.sampling import SamplingParams

ENTRIES = {entry["id"]: entry for entry in load_entries()}
GREEDY = SamplingParams(temperature=0.0, max_tokens=64)


@pytest.fixture(scope="module")
def assistant(settings, registry):
    return Assistant(settings, registry)


def with_picture(exercise: str, seed: int, question: str) -> Message:
    picture = Picture.from_bytes(encode_png(render_exercise(exercise, seed)), "picture")
    return Message("user", [picture, Text(question)])


def ask(assistant, *messages: Message):
    return collect(assistant.turn(TurnRequest(list(messages), params=GREEDY)))


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
def test_new_wordings_find_the_aspect_they_ask_about(assistant, question, aspect):
    assert assistant.knowledge().asks(question) == [aspect]


@pytest.mark.parametrize("question", ["What colour is the shirt?", "write a poem"])
def test_questions_the_knowledge_base_does_not_answer_are_left_to_the_model(assistant, question):
    assert assistant.knowledge().asks(question) == []
    answer = ask(assistant, with_picture("boat-pose", TEST_SEEDS[0], question))
    assert answer.model == assistant.registry.vision().name and not answer.sources


def test_the_steps_are_the_knowledge_bases_for_the_exercise_the_model_names(assistant):
    """A loaded lift: its cautions come too, whatever was asked."""
    question = "What is this exercise and how do I do it?"
    answer = ask(assistant, with_picture("barbell-bench-press", TEST_SEEDS[1], question))
    steps = ENTRIES["barbell-bench-press"]["steps"]["en"]
    assert answer.text.startswith("This is Barbell Bench Press."), answer.text
    assert all(f"{i}. {step}" in answer.text for i, step in enumerate(steps, 1))
    assert [s["id"] for s in answer.sources] == [
        "kb:barbell-bench-press:en:about",
        "kb:barbell-bench-press:en:steps",
        "kb:barbell-bench-press:en:cautions",
    ]


def test_a_bengali_question_gets_the_bengali_name_and_facts(assistant):
    answer = ask(assistant, with_picture("boat-pose", TEST_SEEDS[2], "এটা কোন পেশিতে কাজ করে?"))
    assert answer.text.startswith("এটি Boat Pose — নৌকাসন (বোট পোজ)।"), answer.text
    assert answer.sources[0]["id"] == "kb:boat-pose:bn:about"


def test_back_pain_gets_safety_advice_and_the_cautions_of_the_pictured_exercise(assistant):
    answer = ask(
        assistant, with_picture("boat-pose", TEST_SEEDS[3], "I have back pain, can I do this?")
    )
    assert answer.text.startswith("With a health condition or an injury, check with your doctor")
    assert all(c in answer.text for c in ENTRIES["boat-pose"]["cautions"]["en"])


def test_a_follow_up_uses_the_named_picture_without_asking_the_model_again(assistant, monkeypatch):
    first_turn = with_picture("tree-pose", TEST_SEEDS[4], "What exercise is this?")
    first = ask(assistant, first_turn)
    assert first.text.startswith("This is Tree Pose (Vrksasana).")
    monkeypatch.setattr(assistant.registry.vision(), "stream", None)  # a new naming would fail
    follow_up = ask(
        assistant,
        first_turn,
        Message.text("assistant", first.text),
        Message.text("user", "What muscles does it work?"),
    )
    primary = ENTRIES["tree-pose"]["primary_muscles"]
    assert follow_up.text.startswith(f"Tree Pose mainly works the {primary[0]}")


def test_a_picture_the_knowledge_base_cannot_answer_about_is_encoded_once(assistant, monkeypatch):
    vision = assistant.registry.vision()
    encoded = []
    encode = vision.encoder.encode
    monkeypatch.setattr(
        vision.encoder, "encode", lambda images: encoded.append(1) or encode(images)
    )
    answer = ask(assistant, with_picture("boat-pose", TEST_SEEDS[5], "Can I do this on a boat?"))
    assert answer.text.strip() and answer.model == vision.name and len(encoded) == 1
    # The same question again: the picture's encoding is kept.
    ask(assistant, with_picture("boat-pose", TEST_SEEDS[5], "Can I do this on a boat?"))
    assert len(encoded) == 1
    # Other pixels are another picture.
    vision.image_input(render_exercise("boat-pose", TEST_SEEDS[6]))
    assert len(encoded) == 2
