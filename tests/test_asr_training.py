"""Whisper between CTranslate2 and transformers, and fine-tuning it on spoken sentences: the
bundled tiny.en read into transformers and converted back hears exactly as before; a short
training run writes an artifact that serving converts, caches and loads."""

import json

import pytest
import torch

from omnicoach.artifacts import read_manifest
from omnicoach.audio.decode import decode_audio
from omnicoach.data.speech_dataset import read_lines, speak_lines
from omnicoach.errors import InvalidRequestError, ModelFileError
from omnicoach.models.asr import SpeechRecognizer
from omnicoach.models.bundled import whisper_tiny_en_dir
from omnicoach.models.whisper_weights import (
    fine_tuned_dir,
    read_model_bin,
    to_ctranslate2,
    to_transformers,
)
from omnicoach.training.asr import (
    END,
    NO_TIMESTAMPS,
    PREVIOUS,
    START,
    AsrTraining,
    collate,
    load_clips,
    train_asr,
)
from tests.audio_samples import SENTENCES, espeak
from tests.test_asr import transcribe_file


@pytest.mark.slow
def test_whisper_read_into_transformers_and_converted_back_hears_the_same(tmp_path):
    model = to_transformers(whisper_tiny_en_dir())
    assert model.config.encoder_layers == 4 and model.config.vocab_size == 51864
    to_ctranslate2(model, whisper_tiny_en_dir(), tmp_path / "whisper")
    assert read_model_bin(tmp_path / "whisper" / "model.bin").keys() >= (
        read_model_bin(whisper_tiny_en_dir() / "model.bin").keys()
    )
    bundled = SpeechRecognizer(whisper_tiny_en_dir(), "whisper-tiny.en", threads=1)
    round_trip = SpeechRecognizer(tmp_path / "whisper", "round-trip", threads=1)

    def greedy(recognizer, clip) -> str:  # no temperature fallback: no sampling
        audio = decode_audio(clip.read_bytes(), 60)
        segments, _ = recognizer.model.transcribe(audio, temperature=0.0, vad_filter=True)
        return "".join(segment.text for segment in segments)

    for i, sentence in enumerate(SENTENCES[:3]):
        clip = espeak(tmp_path / f"{i}.wav", sentence)
        assert greedy(round_trip, clip) == greedy(bundled, clip)


def test_a_damaged_model_bin_is_a_clear_error(tmp_path):
    original = (whisper_tiny_en_dir() / "model.bin").read_bytes()
    (tmp_path / "model.bin").write_bytes(original[:5000])
    with pytest.raises(ModelFileError, match="cannot read the CTranslate2 model"):
        read_model_bin(tmp_path / "model.bin")


@pytest.fixture(scope="module")
def spoken_lines(tmp_path_factory):
    """A user's own sentences, each said by two synthetic speakers."""
    folder = tmp_path_factory.mktemp("lines")
    (folder / "words.txt").write_text(
        "Today we practise Tadasana.\n\nHold Vrksasana for five breaths.\n"
        "Next comes Utkatasana.\nFinish with Savasana.\n"
    )
    lines = read_lines(folder / "words.txt")
    counts = speak_lines(lines, folder / "speech", seed=0, per_line=2)
    return folder / "speech", lines, counts


@pytest.mark.slow
def test_a_users_sentences_become_a_speech_folder_with_held_out_lines(spoken_lines):
    speech, lines, counts = spoken_lines
    assert len(lines) == 4 and counts == {"train": 6, "validation": 2}
    train, validation = load_clips(speech, "train"), load_clips(speech, "validation")
    assert not {r["text"] for r in train} & {r["text"] for r in validation}
    assert {r["speaker"].split(":")[0] for r in train} == {"piper", "espeak"}


@pytest.mark.parametrize(
    ("text", "message"),
    [("just one line\n", "at least two sentences"), ("a\n" + "x" * 201 + "\n", ":2: a line")],
)
def test_a_vocabulary_file_that_cannot_be_used_is_refused(tmp_path, text, message):
    (tmp_path / "words.txt").write_text(text)
    with pytest.raises(InvalidRequestError, match=message):
        read_lines(tmp_path / "words.txt")


def test_a_speech_folder_with_a_missing_clip_is_refused(tmp_path):
    row = {"text": "Tadasana", "audio": "train/missing.wav"}
    (tmp_path / "train.jsonl").write_text(json.dumps(row) + "\n")
    with pytest.raises(InvalidRequestError, match="train.jsonl:1: empty text or no file"):
        load_clips(tmp_path, "train")


@pytest.mark.slow
@pytest.mark.parametrize("method", ["decoder", "lora"])
def test_a_short_training_run_writes_an_artifact_that_serving_loads(spoken_lines, tmp_path, method):
    speech, _, _ = spoken_lines
    losses, epochs = [], []
    config = AsrTraining(
        base=whisper_tiny_en_dir(),
        speech=speech,
        out=tmp_path / "asr",
        method=method,
        epochs=2,
        batch_size=2,
        command="test",
    )
    manifest = train_asr(
        config,
        on_step=lambda step, total, loss: losses.append((step, total, loss)),
        on_epoch=lambda epoch, loss, wer: epochs.append((epoch, loss, wer)),
        log=print,
    )
    assert [e[0] for e in epochs] == [1, 2] and all(0 <= e[2] <= 2 for e in epochs)
    assert losses and losses[-1][1] == 6  # 6 clips in batches of 2, two epochs
    assert manifest["metrics"]["wer"] == min(e[2] for e in epochs)
    assert manifest["hyperparameters"]["method"] == method
    weights = "decoder.safetensors" if method == "decoder" else "adapter/adapter_model.safetensors"
    assert weights in read_manifest(tmp_path / "asr")["files"]

    cache = tmp_path / "cache"
    served = fine_tuned_dir(whisper_tiny_en_dir(), tmp_path / "asr", cache)
    assert fine_tuned_dir(whisper_tiny_en_dir(), tmp_path / "asr", cache) == served  # cached
    recognizer = SpeechRecognizer(served, "tuned", threads=1)
    clip = espeak(tmp_path / "clip.wav", SENTENCES[0])
    assert transcribe_file(recognizer, clip).text


def test_an_artifact_without_trained_weights_is_a_clear_error(tmp_path):
    (tmp_path / "asr").mkdir()
    with pytest.raises(ModelFileError, match="omnicoach train asr"):
        fine_tuned_dir(whisper_tiny_en_dir(), tmp_path / "asr", tmp_path / "cache")


def test_a_prompted_clip_learns_only_its_own_words():
    hidden = torch.zeros(3, 4)
    batch = [
        {"encoder_hidden": hidden, "labels": [NO_TIMESTAMPS, 11, 12, END], "prompt": [7, 8]},
        {"encoder_hidden": hidden, "labels": [NO_TIMESTAMPS, 21, END]},
    ]
    features = collate(batch)
    ignored = -100
    assert features["decoder_input_ids"].tolist() == [
        [PREVIOUS, 7, 8, START, NO_TIMESTAMPS, 11, 12],
        [START, NO_TIMESTAMPS, 21, END, END, END, END],
    ]
    assert features["labels"].tolist() == [
        [ignored, ignored, ignored, NO_TIMESTAMPS, 11, 12, END],
        [NO_TIMESTAMPS, 21, END, ignored, ignored, ignored, ignored],
    ]
    # Without a prompt in the batch, the model shifts the labels itself.
    assert "decoder_input_ids" not in collate(batch[1:])
