"""Exercise names in speech: the recogniser's vocabulary from the knowledge base, the resolver
of misheard names, and the generated spoken-question dataset (its splits and its
augmentation)."""

import numpy as np
import pytest

from omnicoach.data import speech_dataset, voices
from omnicoach.evaluation.speech import PLAIN_SENTENCES
from omnicoach.knowledge.base import load_entries
from omnicoach.knowledge.names import NameIndex
from omnicoach.knowledge.spoken_names import HOTWORD_TOKENS, SpokenNameResolver, vocabulary


def test_the_vocabulary_fits_whispers_prompt_budget_and_holds_every_sanskrit_word(
    speech_to_text,
):
    entries = load_entries()
    words = vocabulary(entries, speech_to_text.count_tokens)
    assert speech_to_text.count_tokens(" " + words) <= HOTWORD_TOKENS
    said = set(words.split())
    for entry in entries:
        if entry.get("sanskrit"):
            words_of_name = set(entry["sanskrit"].replace("-", " ").split()) - {"I", "II", "III"}
            assert words_of_name <= said, entry["id"]


def test_a_smaller_budget_keeps_the_vocabulary_within_it():
    words = vocabulary(load_entries(), count_tokens=lambda text: len(text.split()), budget=10)
    assert len(words.split()) == 10


def test_names_are_said_with_numerals_as_words():
    assert speech_dataset.spoken("Virabhadrasana II") == "Virabhadrasana two"
    assert speech_dataset.spoken("Legs-Up-the-Wall Pose") == "Legs Up the Wall Pose"
    assert speech_dataset.spoken("Warrior I") == "Warrior one"


def test_the_test_split_has_speakers_and_templates_no_training_clip_has():
    splits = speech_dataset.plan(seed=0)
    trained = splits["train"] + splits["validation"]
    train_voices = {row["speaker"].voice.split("+")[0] for row in trained}
    test_voices = {row["speaker"].voice.split("+")[0] for row in splits["test"]}
    assert not train_voices & test_voices
    assert {row["speaker"].engine for row in splits["test"]} == {"espeak", "piper"}
    assert not {r["template"] for r in trained} & {r["template"] for r in splits["test"]}
    # Every exercise is asked by its English name in the test split, by Sanskrit where it has one.
    entries = load_entries()
    english = {r["exercise"] for r in splits["test"] if r["name_kind"] == "english"}
    sanskrit = {r["exercise"] for r in splits["test"] if r["name_kind"] == "sanskrit"}
    assert english == {e["id"] for e in entries}
    assert sanskrit == {e["id"] for e in entries if e.get("sanskrit")}


def test_the_plan_is_the_same_for_the_same_seed():
    first, again = speech_dataset.plan(seed=3), speech_dataset.plan(seed=3)
    assert first == again
    assert first != speech_dataset.plan(seed=4)


@pytest.mark.parametrize("snr_db", [10.0, 30.0])
def test_noise_is_added_at_the_asked_signal_to_noise_ratio(snr_db):
    rng = np.random.default_rng(0)
    speech = (0.3 * np.sin(np.arange(16000) / 5)).astype(np.float32)
    noisy = voices.with_noise(speech, rng, snr_db)
    noise = noisy - speech
    measured = 10 * np.log10((speech**2).mean() / (noise**2).mean())
    assert measured == pytest.approx(snr_db, abs=0.5)


def test_a_room_keeps_the_length_and_the_loudness():
    rng = np.random.default_rng(1)
    speech = (0.5 * np.sin(np.arange(8000) / 7)).astype(np.float32)
    heard = voices.in_a_room(speech, 16000, rng)
    assert heard.shape == speech.shape
    assert np.abs(heard).max() == pytest.approx(0.5, rel=1e-3)


def test_a_clip_is_spoken_by_espeak_and_written_at_16_khz(tmp_path):
    speaker = voices.Speaker("espeak", "en-gb-scotland+f2", speed=160, pitch=40)
    samples, rate = voices.speak(speaker, "How do I do Tadasana?")
    heard = speech_dataset.heard(samples, rate, np.random.default_rng(0))
    path = voices.write_wav(tmp_path / "clip.wav", heard, speech_dataset.RATE)
    again, again_rate = voices.read_wav(path)
    assert again_rate == 16000
    assert len(again) == pytest.approx(len(samples) * 16000 / rate, abs=2)
    assert np.abs(again).max() > 0.05


@pytest.fixture(scope="module")
def resolver():
    return SpokenNameResolver(load_entries())


@pytest.mark.parametrize(
    ("heard", "name"),
    [
        # What Whisper tiny.en heard in clips of the training speakers.
        ("Next, we will do my lasanga.", "Malasana"),
        ("Is Troy Canassana safe for beginners?", "Trikonasana"),
        ("Can you explain Tricep Bush now to me?", "Tricep Pushdown"),
    ],
)
def test_a_misheard_name_is_replaced_by_the_name_it_sounds_like(resolver, heard, name):
    corrected, found = resolver.correct(heard)
    assert found is not None and found.name.lower() == name.lower(), found
    assert found.name in corrected
    assert resolver.index.resolve(corrected).exercise == found.exercise


@pytest.mark.parametrize(
    "sentence",
    [
        *PLAIN_SENTENCES,
        "What should I eat before a long run?",
        "Can you make me a weekly training plan?",
        "How many days a week should I rest?",
        "My shoulders feel tight after working at the computer.",
    ],
)
def test_ordinary_sentences_are_never_corrected_into_names(resolver, sentence):
    assert resolver.correct(sentence) == (sentence, None)


def test_a_transcript_that_already_names_an_exercise_is_left_alone(resolver):
    heard = "Is Tadasana good for posture?"
    assert resolver.correct(heard) == (heard, None)


def test_the_plain_training_sentences_name_no_exercise_and_are_not_the_measured_ones():
    rows = speech_dataset.plain_rows(seed=0)
    train = {r["text"] for r in rows["train"]}
    validation = {r["text"] for r in rows["validation"]}
    assert len(train) == 300 and len(validation) == 30 and not train & validation
    names = NameIndex(load_entries())
    assert not [t for t in train | validation if names.mentions(t)]
    assert not (train | validation) & set(PLAIN_SENTENCES)  # WER on plain English stays held out
