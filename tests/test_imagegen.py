"""The image generator's training (training/imagegen.py) on a few rendered exercises, a few
steps at a time: both stages, checkpoints that resume, a clean stop on time, shipping, going
on from a shipped artifact, and loading it as a diffusers pipeline."""

import json

import pytest
import torch
from safetensors.torch import load_file

from omnicoach.data.drawing_dataset import HELD_OUT_TEMPLATES, TRAIN_TEMPLATES, prompts
from omnicoach.data.exercise_images import write_dataset
from omnicoach.errors import InvalidRequestError, ModelFileError
from omnicoach.knowledge.base import load_entries
from omnicoach.models.image_generator import load_generator
from omnicoach.training.imagegen import ImageGenConfig, ship, train_imagegen

EXERCISES = ["boat-pose", "tree-pose", "push-up"]


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    directory = tmp_path_factory.mktemp("renders")
    write_dataset(directory, 4, "train", EXERCISES, progress=False)
    write_dataset(directory, 2, "test", EXERCISES, progress=False)
    return directory


def tiny(stage: str, out, images, **more) -> ImageGenConfig:
    settings = {"batch_size": 4, "max_steps": 2, "eval_every": 2, "sample_every": 2}
    return ImageGenConfig(stage=stage, out=out, images=images, **(settings | more))


@pytest.fixture(scope="module")
def autoencoder(images, tmp_path_factory):
    out = tmp_path_factory.mktemp("autoencoder")
    summary = train_imagegen(tiny("autoencoder", out, images), log=lambda *_: None)
    assert summary["steps"] == 2 and summary["finished"]
    return out / "autoencoder"


def test_the_autoencoder_learns_its_latent_scale_and_shows_reconstructions(autoencoder):
    config = json.loads((autoencoder / "config.json").read_text())
    assert config["scaling_factor"] > 0 and config["scaling_factor"] != 0.18215  # SD's default
    assert (autoencoder.parent / "samples" / "step-000002.png").is_file()
    assert (autoencoder.parent / "loss.png").is_file()


def test_the_unet_trains_resumes_ships_and_goes_on_from_the_artifact(autoencoder, images, tmp_path):
    out, artifact = tmp_path / "unet", tmp_path / "imagegen"
    first = train_imagegen(tiny("unet", out, images, autoencoder=autoencoder), log=print)
    assert first["steps"] == 2 and first["last_validation_loss"] > 0
    resumed = train_imagegen(
        tiny("unet", out, images, autoencoder=autoencoder, max_steps=3), log=lambda *_: None
    )
    assert resumed["steps"] == 3  # one more step on top of the checkpoint, not three
    manifest = ship(out, artifact, "omnicoach train imagegen …", started=0.0)
    assert manifest["steps"] == 3 and manifest["autoencoder_training"]["steps"] == 2
    assert {"unet/config.json", "autoencoder/config.json", "samples.png"} <= set(manifest["files"])
    weights = next((artifact / "unet").glob("*.safetensors"))
    assert next(iter(load_file(weights).values())).dtype == torch.float16  # fp16 on disk

    # A later session goes on from the artifact: its steps and loss history carry over.
    later = tmp_path / "later"
    going_on = train_imagegen(tiny("unet", later, images, init=artifact, max_steps=4), log=print)
    assert going_on["steps"] == 4
    assert [row["step"] for row in _csv(later / "loss.csv")] == [1, 2, 3, 4]

    pipeline = load_generator(artifact)
    picture = pipeline(
        "draw a person doing tree pose",
        num_inference_steps=3,
        height=64,
        width=64,
        generator=torch.Generator().manual_seed(0),
    ).images[0]
    assert picture.size == (64, 64)

    (artifact / "scheduler" / "scheduler_config.json").write_text("{}")
    with pytest.raises(ModelFileError, match="does not match its manifest"):
        load_generator(artifact)


def test_a_time_limit_stops_cleanly_with_a_checkpoint(autoencoder, images, tmp_path):
    config = tiny("unet", tmp_path, images, autoencoder=autoencoder, max_steps=50, max_minutes=0)
    summary = train_imagegen(config, log=lambda *_: None)
    assert summary["steps"] == 1 and not summary["finished"]
    assert (tmp_path / "checkpoint" / "progress.json").is_file()
    assert (tmp_path / "unet" / "config.json").is_file()


def test_a_missing_autoencoder_stage_or_artifact_is_a_clear_error(images, tmp_path):
    with pytest.raises(InvalidRequestError, match="needs the trained autoencoder"):
        train_imagegen(tiny("unet", tmp_path, images))
    with pytest.raises(InvalidRequestError, match="stage must be one of"):
        train_imagegen(tiny("vae", tmp_path, images))
    with pytest.raises(ModelFileError, match="omnicoach train imagegen"):
        load_generator(tmp_path / "nothing-here")


def test_held_out_prompt_wordings_are_never_trained_on():
    for entry in load_entries():
        assert not set(prompts(entry, TRAIN_TEMPLATES)) & set(prompts(entry, HELD_OUT_TEMPLATES))


def _csv(path):
    import csv

    with open(path) as f:
        return [{"step": int(row["step"])} for row in csv.DictReader(f)]
