"""The assistant's conversation logic with scripted models (tests/fakes.py): which exercise a
question is about, who writes the answer, what it says first, and the events of a turn. The
real models go through the same pipeline in test_doors, test_picture_answers and the server
tests."""

import pytest

from omnicoach.assistant import (
    Answering,
    Assistant,
    Done,
    Message,
    Routed,
    Sources,
    TextDelta,
    TurnRequest,
    Usage,
    collect,
)
from omnicoach.assistant.pictures import newest_picture
from omnicoach.config import load_settings
from omnicoach.knowledge.base import load_entries
from omnicoach.models.sampling import SamplingParams
from tests.fakes import FakeRegistry, ScriptedLLM

ENTRIES = {entry["id"]: entry for entry in load_entries()}


@pytest.fixture(scope="module")
def knowledge(tmp_path_factory):
    """Loaded once (a scripted embedder): every test's assistant shares it."""
    assistant = Assistant(load_settings(data_dir=tmp_path_factory.mktemp("k")), FakeRegistry())
    return assistant.knowledge()


@pytest.fixture
def llm():
    return ScriptedLLM()


@pytest.fixture
def assistant(tmp_path, knowledge, llm):
    made = Assistant(load_settings(data_dir=tmp_path), FakeRegistry(llm))
    made._knowledge = knowledge
    return made


def ask(assistant, *turns: str, **request) -> object:
    """The answer to the last of TURNS (user, assistant, user, …)."""
    roles = ["user", "assistant"] * len(turns)
    messages = [Message.text(role, text) for role, text in zip(roles, turns, strict=False)]
    return collect(assistant.turn(TurnRequest(messages, **request)))


def test_a_named_exercise_is_answered_from_its_entry_without_the_model(assistant, llm):
    answer = ask(assistant, "What muscles are used in a push up?")
    assert answer.text == (
        "Push-Up mainly works the pectoralis major, triceps, anterior deltoids. It also works "
        "the serratus anterior, rectus abdominis, transverse abdominis, gluteus maximus, "
        "quadriceps. [1]"
    )
    assert [s["id"] for s in answer.sources] == ["kb:push-up:en:about"]
    assert llm.asked == [] and answer.model == llm.name


@pytest.mark.parametrize(
    ("question", "exercise"),
    [
        ("how many pushups should a beginner do", "push-up"),
        ("pull ups: what do they work?", "pull-up"),
        ("Virabadrasana 2 steps", "warrior-ii"),  # misspelt Sanskrit
        ("warrior two, what's it good for", "warrior-ii"),
        ("পুশ-আপে কোন পেশি কাজ করে?", "push-up"),  # a Bengali name with a suffix
    ],
)
def test_names_beat_similarity_and_spelling(assistant, question, exercise):
    answer = ask(assistant, question)
    assert {s["id"].split(":")[1] for s in answer.sources} == {exercise}


def test_a_follow_up_is_about_the_conversations_exercise(assistant):
    first = ask(assistant, "What is crow pose?")
    answer = ask(assistant, "What is crow pose?", first.text, "What muscles does it work?")
    assert answer.text.startswith("Crow Pose mainly works")
    bengali = ask(assistant, "নৌকাসন কী?", "…", "আর এটা কোন পেশিতে কাজ করে?")
    assert bengali.sources[0]["id"] == "kb:boat-pose:bn:about"


def test_a_question_naming_another_exercise_is_about_that_one(assistant):
    answer = ask(assistant, "What is crow pose?", "…", "And how do I do a push-up?")
    assert answer.text.startswith("How to do Push-Up [1]:\n1. ")


def test_several_aspects_are_all_answered(assistant):
    answer = ask(assistant, "How do I do a goblet squat and what mistakes should I watch for?")
    entry = ENTRIES["goblet-squat"]
    assert all(step in answer.text for step in entry["steps"]["en"])
    assert all(mistake in answer.text for mistake in entry["common_mistakes"]["en"])
    # A loaded lift (a kettlebell or dumbbell held at the chest): its cautions come too.
    assert [s["id"].rsplit(":", 1)[1] for s in answer.sources] == [
        "steps",
        "mistakes",
        "cautions",
    ]


def test_an_ambiguous_name_asks_which_one(assistant, llm):
    answer = ask(assistant, "How do I do the warrior pose?")
    assert answer.text.splitlines() == [
        "Which one do you mean? I have checked entries for:",
        "- Warrior I (Virabhadrasana I)",
        "- Warrior II (Virabhadrasana II)",
        "- Warrior III (Virabhadrasana III)",
    ]
    assert llm.asked == []


def test_an_exercise_without_an_entry_is_said_so_and_the_general_answer_is_marked(assistant, llm):
    answer = ask(assistant, "How do I do a sumo deadlift?")
    assert answer.text.startswith("I don't have a checked entry for “sumo deadlift”")
    refusal, general = answer.text.split("General answer (not from a checked entry")
    assert "Barbell Deadlift" in refusal  # a checked exercise that may be close, named only
    assert "learn it from a qualified coach" in general and not answer.sources
    assert llm.asked == []  # grounded: no invented steps


def test_in_generative_mode_the_general_answer_is_the_model_s(assistant, llm):
    answer = ask(assistant, "How do I do a sumo deadlift?", answer_mode="generative")
    refusal, general = answer.text.split("General answer (not from a checked entry")
    assert "Barbell Deadlift" in refusal
    assert general.endswith(llm.reply) and not answer.sources
    assert llm.asked[-1][-1]["content"] == "How do I do a sumo deadlift?"  # no sources given


def test_in_bengali_an_exercise_without_an_entry_gets_no_machine_bengali(assistant, llm):
    answer = ask(assistant, "পিস্তল স্কোয়াট কীভাবে করব?")
    assert answer.text.startswith("“পিস্তল স্কোয়াট” নিয়ে আমার কাছে যাচাই করা কোনো তথ্য নেই")
    assert llm.asked == []


def test_a_warning_sign_gets_stop_and_see_a_professional_first_and_only_cautions(assistant):
    answer = ask(assistant, "I get a sharp pain in my lower back when I deadlift")
    assert answer.text.startswith("Stop this exercise for now.")
    assert "doctor or physiotherapist" in answer.text.split("\n")[0]
    assert "Cautions for Barbell Deadlift [1]:" in answer.text
    assert "How to do" not in answer.text
    emergency = ask(assistant, "বুকে ব্যথা আর শ্বাসকষ্ট হচ্ছে বারপি করার সময়")
    assert emergency.text.startswith("এখনই ব্যায়াম বন্ধ করুন।")


def test_a_condition_and_a_risky_pose_carry_the_cautions(assistant):
    answer = ask(assistant, "I'm pregnant, how do I do a headstand?")
    assert answer.text.startswith("With a health condition or an injury, check with your doctor")
    assert "How to do Supported Headstand" in answer.text
    assert all(c in answer.text for c in ENTRIES["headstand"]["cautions"]["en"])
    # An inversion carries them even when nobody mentions a condition.
    assert "Cautions for Plow Pose" in ask(assistant, "What is plow pose?").text


def test_a_bengali_question_is_answered_in_the_entrys_bengali(assistant):
    answer = ask(assistant, "নৌকাসন কীভাবে করব?")
    steps = ENTRIES["boat-pose"]["steps"]["bn"]
    assert answer.text.startswith("নৌকাসন (বোট পোজ) করার ধাপ [1]:\n1. ")
    assert all(step in answer.text for step in steps)
    assert answer.sources[0]["id"] == "kb:boat-pose:bn:steps"


def test_an_open_question_is_the_models_with_retrieved_sources(assistant, llm):
    answer = ask(assistant, "How often should I train in a week?")
    assert answer.text == llm.reply
    assert llm.asked and llm.asked[-1][-1]["role"] == "user"


def test_generative_mode_gives_the_model_the_entrys_passages(assistant, llm):
    answer = ask(assistant, "What muscles are used in a push up?", answer_mode="generative")
    assert answer.text == llm.reply
    assert [s["id"] for s in answer.sources] == ["kb:push-up:en:about"]
    prompt = llm.asked[-1][-1]["content"]
    assert prompt.startswith("Use these numbered sources") and "[1] Push-Up" in prompt


def test_without_grounding_the_model_answers_alone(assistant, llm):
    answer = ask(assistant, "What muscles are used in a push up?", grounding=False)
    assert answer.text == llm.reply and not answer.sources
    assert llm.asked[-1][-1]["content"] == "What muscles are used in a push up?"


def test_a_turns_events_come_in_order(assistant):
    events = list(assistant.turn(TurnRequest([Message.text("user", "What is tree pose?")])))
    kinds = [type(event) for event in events]
    assert kinds[:3] == [Routed, Sources, Answering]
    assert set(kinds[3:-2]) == {TextDelta} and kinds[-2:] == [Usage, Done]
    assert events[-1].finish_reason == "stop"


def test_a_picture_request_without_a_generator_is_answered_plainly(assistant, llm):
    answer = ask(assistant, "Draw a person doing warrior II")
    assert answer.route.label == "image_generation"
    assert "image generation is not installed" in answer.text and llm.asked == []


def test_the_clients_max_tokens_cuts_a_fixed_answer(assistant):
    whole = ask(assistant, "How do I do a push-up?")
    cut = ask(assistant, "How do I do a push-up?", max_tokens=5)
    assert (whole.finish_reason, cut.finish_reason) == ("stop", "length")
    assert cut.completion_tokens == 5 and whole.text.startswith(cut.text)


def test_cancel_stops_a_generated_answer(assistant, llm):
    llm.reply = " ".join(["word"] * 200)
    turn = assistant.turn(TurnRequest([Message.text("user", "Tell me a story about the sea")]))
    received = []
    for event in turn:
        if isinstance(event, TextDelta):
            received.append(event.text)
            if len(received) == 3:
                turn.cancel()
        last = event
    assert len(received) < 10 and last.finish_reason == "cancelled"


class _Store:
    def load(self, user, file_id):
        return f"picture {file_id}"


def test_a_drawn_picture_is_not_the_subject_unless_asked_about(tmp_path):
    messages = [
        {"role": "user", "content": "Draw a tree pose"},
        {"role": "assistant", "content": "Here is a picture", "image_files": ["file-1"]},
        {"role": "user", "content": "What muscles does it work?"},
    ]
    assert newest_picture(messages, _Store(), "local") is None
    assert newest_picture(messages, _Store(), "local", drawings=True) == (1, "picture file-1")
    photo = [{"role": "user", "content": "", "image_files": ["file-0"]}, *messages]
    assert newest_picture(photo, _Store(), "local") == (0, "picture file-0")


def test_the_requests_sampling_settings_reach_the_model(assistant, llm):
    params = SamplingParams(temperature=0.0, max_tokens=7, seed=3)
    ask(assistant, "How often should I train in a week?", params=params)
    assert llm.params[-1] == params and llm.generations[-1].closed
