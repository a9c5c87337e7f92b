"""What the chat asks the generator to draw (server/chat_routing.drawing_prompt): the
generator trained here gets an exercise in the wording it learnt, LoRA triggers kept; a
pipeline from elsewhere gets the message as it is."""

import json

from omnicoach.data.drawing_dataset import HELD_OUT_TEMPLATES, TRAIN_TEMPLATES
from omnicoach.models.image_generator import EXERCISE_PROMPT, ImageGenerator
from omnicoach.server.chat_routing import drawing_prompt


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
    assert drawing_prompt(asked, ours) == "a person doing Warrior II"
    # By its Sanskrit name, and with a LoRA's trigger word, which is kept.
    assert drawing_prompt("Paint Virabhadrasana II, chalkstyle", ours) == (
        "a person doing Warrior II chalkstyle"
    )
    # No exercise named: the message as it is.
    assert drawing_prompt("draw a sunset over the sea", ours) == "draw a sunset over the sea"


def test_a_pipeline_from_elsewhere_gets_the_message_as_it_is(tmp_path):
    theirs = _generator(tmp_path, None)
    asked = "draw warrior II on a beach"
    assert drawing_prompt(asked, theirs) == asked
