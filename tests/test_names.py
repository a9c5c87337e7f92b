"""Which exercise a question names and what it asks (knowledge/names.py, aspects.py,
safety.py): exact names first, the spellings people type, families, exercises the knowledge
base lacks, and the cue words of each aspect. No model: milliseconds."""

import pytest

from omnicoach.knowledge import safety
from omnicoach.knowledge.aspects import clauses, cued_aspects
from omnicoach.knowledge.base import load_entries
from omnicoach.knowledge.names import NameIndex, Resolution

NAMES = NameIndex(load_entries())


@pytest.mark.parametrize(
    ("text", "exercise"),
    [
        ("What muscles are used in a push up?", "push-up"),
        ("pushups for beginners", "push-up"),
        ("Is a pull-up harder?", "pull-up"),
        ("how do I do warrior 2", "warrior-ii"),
        ("Warrior II alignment", "warrior-ii"),
        ("warrior two", "warrior-ii"),
        ("In a barbell back squat, where should the bar sit?", "barbell-back-squat"),
        ("child's pose or childs pose", "childs-pose"),
        ("trikonasan steps", "triangle-pose"),  # misspelt
        ("how do i do tree?", "tree-pose"),  # an everyday word, in exercise talk
        ("নৌকাসন কীভাবে করব?", "boat-pose"),
        ("বোট পোজের উপকারিতা কী?", "boat-pose"),  # the gloss, with a suffix
        ("স্কোয়াট কীভাবে করব?", "bodyweight-squat"),  # the Bengali spelling of "squat"
        ("আমার চোখে গ্লুকোমা, হলাসন করা কি ঠিক?", "plow-pose"),  # a comma is no qualifier
        ("my teacher keeps saying chaturanga, what is it?", "four-limbed-staff-pose"),  # Sanskrit
        ("romanain deadlifts for hamstrings", "romanian-deadlift"),  # a misspelt longer name
        ("ত্রিকোণাসনে হাত কোথায় রাখব?", "triangle-pose"),  # one word of "উত্থিত ত্রিকোণাসন"
        ("তবু শীর্ষাসন শিখতে চাই", "headstand"),  # "তবু" (still) makes no other exercise
        ("ডাম্বেল কার্ল কীভাবে করব?", "dumbbell-biceps-curl"),
        ("Describe plank pose in a few sentences.", "plank-pose"),  # a verb is no qualifier
    ],
)
def test_the_name_said_is_the_exercise(text, exercise):
    assert NAMES.resolve(text) == Resolution(exercise=exercise)


@pytest.mark.parametrize(
    ("text", "unknown"),
    [
        ("How do I do a sumo deadlift?", "sumo deadlift"),
        ("single leg deadlift form", "single leg deadlift"),
        ("king pigeon pose steps", "king pigeon pose"),
        ("How do I do a Turkish get-up?", "turkish get up"),
        ("What is firefly pose?", "firefly pose"),
        ("how to do tittibhasana", "tittibhasana"),
        ("half moon pose (ardha chandrasana) how to", "half moon pose"),  # not ashta chandrasana
        ("পিস্তল স্কোয়াট কীভাবে করব?", "পিস্তল স্কোয়াট"),
        ("hanging leg raises for abs", "hanging leg raises"),  # a variant of a longer name
        ("parivrtta trikonasana steps", "parivrtta trikonasana"),
        ("gomukhasana, how do I do it?", "gomukhasana"),  # an asana's name, alone
        ("ইনক্লাইন বেঞ্চ প্রেস কীভাবে করব?", "ইনক্লাইন বেঞ্চ প্রেস"),
        ("পবনমুক্তাসন কি কাজ করে?", "পবনমুক্তাসন"),
    ],
)
def test_an_exercise_the_knowledge_base_lacks_is_named_as_such(text, unknown):
    assert NAMES.resolve(text) == Resolution(unknown=unknown)


def test_a_family_name_fits_several_and_everyday_words_are_not_names():
    assert NAMES.resolve("how do I do the warrior pose?").candidates == (
        "warrior-i",
        "warrior-ii",
        "warrior-iii",
    )
    assert not NAMES.resolve("Is fish healthy after training?").named
    assert not NAMES.resolve("Name one standing yoga pose.").named  # a kind, not a name
    assert NAMES.resolve("arm curls for beginners").candidates  # still a curl
    assert not NAMES.resolve("What is a good warm up before running?").named
    assert not NAMES.resolve("my heel lifts off the floor, is that wrong?").named  # a verb
    assert not NAMES.resolve("এটা কি ব্যায়াম নাকি যোগাসন?").named  # "yoga pose", no name


def test_names_are_masked_before_the_question_is_read():
    assert NAMES.masked("Give me a one-line definition of the step-up.") == (
        "Give me a one-line definition of the it."
    )


@pytest.mark.parametrize(
    ("question", "aspects"),
    [
        ("how do I do it and what should I avoid?", {"how", "mistakes"}),
        ("who should avoid it?", {"cautions"}),
        ("Ustrasana warnings?", {"cautions"}),
        ("where should I feel it?", {"how", "muscles"}),
        ("what can I do if I can't wrap them fully?", {"beginner"}),
        ("এটা কীভাবে করব?", {"how"}),
        ("এটা নিয়মিত করলে কী উপকার পাব?", {"benefits"}),
        ("কাদের জন্য নিষেধ?", {"cautions"}),
        ("should my hands be wider than my shoulders or closer?", {"how"}),
        ("which foot goes in front?", {"how"}),
        ("what bad habits creep in?", {"mistakes"}),
        ("how do I make it gentler on my knees?", {"beginner"}),
        ("what's the payoff?", {"benefits"}),
        ("is it okay with a weak wrist?", {"cautions"}),
        ("এটা আসলে কী জিনিস?", {"what"}),
        ("দৃষ্টি কোন দিকে রাখব?", {"how"}),
    ],
)
def test_cue_words_say_what_is_asked(question, aspects):
    found = set().union(*(cued_aspects(c) for c in clauses(question)))
    assert found == aspects


@pytest.mark.parametrize(
    ("question", "level"),
    [
        ("I get a sharp pain in my lower back when I deadlift", "warning"),
        ("I felt a pop in my knee during lunges", "warning"),
        ("I got dizzy after the headstand", "warning"),
        ("I have chest pain when I run", "emergency"),
        ("বুকে ব্যথা হচ্ছে", "emergency"),
        ("স্কোয়াট করার সময় হাঁটুতে তীব্র ব্যথা", "warning"),
        ("I'm pregnant, is boat pose OK?", "condition"),
        ("I have high blood pressure", "condition"),
        ("How do I do boat pose?", None),
        ("my back went into spasm after rows and I can't stand straight", "warning"),
        ("a terrible headache since my headstand", "warning"),
        ("হাঁটুর পেছনে কালশিটে পড়েছে", "warning"),
        ("I'm 20 weeks along, is cobra fine?", "condition"),
        ("I had a c-section two months ago", "condition"),
        ("partial rotator cuff tear, can I bench?", "condition"),
        ("হাঁটু রিপ্লেস করা হয়েছে", "condition"),
    ],
)
def test_warning_signs_come_before_conditions(question, level):
    assert safety.check(question).level == level


def test_inversions_and_loaded_lifts_are_risky_and_a_wall_sit_is_not():
    entries = {entry["id"]: entry for entry in load_entries()}
    assert safety.is_risky(entries["headstand"]) and safety.is_risky(entries["barbell-deadlift"])
    assert not safety.is_risky(entries["wall-sit"])
