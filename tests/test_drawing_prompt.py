"""What the chat asks the generator to draw (assistant/drawing.drawing_prompt): the
generator trained here gets an exercise in the wording it learnt, LoRA triggers kept; a
pipeline from elsewhere gets the message as it is."""

import json

import pytest

from omnicoach.assistant.drawing import PICTURE_WORDS, drawing_prompt
from omnicoach.data.drawing_dataset import HELD_OUT_TEMPLATES, TRAIN_TEMPLATES
from omnicoach.knowledge.base import load_entries
from omnicoach.knowledge.names import NameIndex
from omnicoach.models.image_generator import EXERCISE_PROMPT, ImageGenerator

NAMES = NameIndex(load_entries())


def _generator(tmp_path, exercise_prompt):
    lora = tmp_path / "loras" / "chalk"
    lora.mkdir(parents=True)
    described = {"name": "chalk", "trigger": "chalkstyle", "base": "omnicoach-imagegen"}
    (lora / "lora.json").write_text(json.dumps(described))
    return ImageGenerator(
        None, "omnicoach-imagegen", 64, upscales=True, lora_dir=tmp_path / "loras",
        exercise_prompt=exercise_prompt,
    )  # fmt: skip


def test_a_message_naming_an_exercise_is_drawn_in_the_generators_wording(tmp_path):
    # The wording is one the generator trained on, so the evaluation's held-out ones stay unseen.
    assert EXERCISE_PROMPT in TRAIN_TEMPLATES and EXERCISE_PROMPT not in HELD_OUT_TEMPLATES
    ours = _generator(tmp_path, EXERCISE_PROMPT)
    asked = "can you draw warrior II for me and say what it is good for?"
    assert drawing_prompt(asked, ours, NAMES) == "a person doing Warrior II"
    # By its Sanskrit name, and with a LoRA's trigger word, which is kept.
    assert drawing_prompt("Paint Virabhadrasana II, chalkstyle", ours, NAMES) == (
        "a person doing Warrior II chalkstyle"
    )
    # No exercise named: the message as it is.
    assert drawing_prompt("draw a sunset over the sea", ours, NAMES) == "draw a sunset over the sea"


def test_a_pipeline_from_elsewhere_gets_the_message_as_it_is(tmp_path):
    theirs = _generator(tmp_path, None)
    asked = "draw warrior II on a beach"
    assert drawing_prompt(asked, theirs, NAMES) == asked


@pytest.mark.parametrize(
    "request_",
    ["Draw a person doing warrior II", "ekta chobi ako cobra pose er", "Img of side plank",
     "ভুজঙ্গাসন এঁকে দাও", "Again!", "make it a watercolour"],
)  # fmt: skip
def test_picture_requests_speak_of_a_picture(request_):
    assert PICTURE_WORDS.search(request_)


@pytest.mark.parametrize(
    "question",
    ["এই আসনটা কারা এড়িয়ে চলবেন?", "আর ঈগল পোজে ঢোকার ধাপগুলো একটু বলবেন?",
     "I got really lightheaded after a set of back squats", "What muscles does a push-up work?"],
)  # fmt: skip
def test_questions_the_router_once_sent_to_the_generator_do_not(question):
    """The router labelled the first three picture requests; a message is drawn only when it
    also speaks of a picture (assistant/pipeline.Turn._route)."""
    assert not PICTURE_WORDS.search(question)
