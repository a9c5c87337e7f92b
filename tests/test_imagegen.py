"""The image generator's training (training/imagegen.py) on a few rendered exercises, a few
steps at a time: both stages, checkpoints that resume, a clean stop on time, shipping, going
on from a shipped artifact, and loading it as a diffusers pipeline."""

import json
import shutil

import pytest
import torch
from safetensors.torch import load_file, save_file

from omnicoach.data.drawing_dataset import HELD_OUT_TEMPLATES, TRAIN_TEMPLATES, prompts
from omnicoach.data.exercise_images import write_dataset
from omnicoach.errors import InvalidRequestError, ModelFileError
from omnicoach.knowledge.base import load_entries
from omnicoach.models.image_generator import DEFAULT_GUIDANCE, load_generator
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
    # The autoencoder goes on from the artifact too (to adapt it to other images).
    adapted = tmp_path / "adapted"
    summary = train_imagegen(
        tiny("autoencoder", adapted, images, init=artifact, max_steps=3), log=lambda *_: None
    )
    assert summary["steps"] == 3  # the artifact's 2 and one more

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


def test_a_resumed_unet_run_reuses_the_encoded_training_images(
    autoencoder, images, tmp_path, monkeypatch
):
    from omnicoach.training import imagegen

    encoded = []  # the sizes of the image batches encoded, run by run
    real_encode = imagegen._UNetStage._encode
    monkeypatch.setattr(
        imagegen._UNetStage,
        "_encode",
        lambda stage, pixels: encoded.append(len(pixels)) or real_encode(stage, pixels),
    )
    config = tiny("unet", tmp_path, images, autoencoder=autoencoder, max_steps=1)
    train_imagegen(config, log=lambda *_: None)
    train_count = len(EXERCISES) * 4
    assert train_count in encoded and (tmp_path / "latents.pt").is_file()

    encoded.clear()
    config.max_steps = 2
    train_imagegen(config, log=lambda *_: None)
    assert train_count not in encoded  # read back from latents.pt, only the test images encoded

    # Other encoder weights make other latents: the cache is not used.
    other = tmp_path / "other-autoencoder"
    shutil.copytree(autoencoder, other)
    weights = next(other.glob("*.safetensors"))
    tensors = load_file(weights)
    tensors = {k: v + 0.01 if k.startswith("encoder.") else v for k, v in tensors.items()}
    save_file(tensors, weights)
    config.autoencoder, config.max_steps = other, 3
    train_imagegen(config, log=lambda *_: None)
    assert train_count in encoded


def test_the_unet_ships_its_averaged_weights_and_resumes_the_average(autoencoder, images, tmp_path):
    from diffusers import UNet2DConditionModel

    config = tiny(
        "unet", tmp_path, images, autoencoder=autoencoder, max_steps=3, ema_decay=0.9,
        learning_rate=1e-2, warmup_steps=0,
    )  # fmt: skip
    train_imagegen(config, log=lambda *_: None)
    average = torch.load(tmp_path / "checkpoint" / "ema.pt", weights_only=True)
    assert average["optimization_step"] == 3
    saved = UNet2DConditionModel.from_pretrained(tmp_path / "unet")
    raw = load_file(tmp_path / "checkpoint" / "trainable.safetensors")
    names = [name for name, _ in saved.named_parameters()]
    weights = dict(saved.named_parameters())
    for name, shadow in zip(names, average["shadow_params"], strict=True):
        assert torch.allclose(weights[name], shadow.float(), atol=1e-3), name
    # The shipped weights are the average, not the last step's.
    assert any(not torch.allclose(weights[n], raw[n].float(), atol=1e-3) for n in names)

    config.max_steps = 4
    train_imagegen(config, log=lambda *_: None)
    assert torch.load(tmp_path / "checkpoint" / "ema.pt")["optimization_step"] == 4


def test_the_decoder_stage_sharpens_the_decoder_and_keeps_every_latent(
    autoencoder, images, tmp_path
):
    from diffusers import AutoencoderKL

    out = tmp_path / "decoder"
    summary = train_imagegen(
        tiny("decoder", out, images, autoencoder=autoencoder, learning_rate=1e-2, warmup_steps=0),
        log=lambda *_: None,
    )
    assert summary["steps"] == 2
    before = AutoencoderKL.from_pretrained(autoencoder).state_dict()
    after = AutoencoderKL.from_pretrained(out / "autoencoder").state_dict()
    for name, weight in after.items():
        same = torch.equal(weight, before[name])
        assert same == name.startswith(("encoder.", "quant_conv.")), name
    scale = [json.loads((d / "config.json").read_text())["scaling_factor"]
             for d in (autoencoder, out / "autoencoder")]  # fmt: skip
    assert scale[0] == pytest.approx(scale[1])  # the same latents, so the same scale

    # A UNet run ships with the sharper decoder, without encoding its images again.
    unet = tmp_path / "unet"
    train_imagegen(tiny("unet", unet, images, autoencoder=autoencoder), log=lambda *_: None)
    config = tiny("unet", unet, images, autoencoder=out / "autoencoder")
    assert train_imagegen(config, log=lambda *_: None)["steps"] == 2
    manifest = ship(unet, tmp_path / "artifact", "omnicoach train imagegen …", started=0.0)
    assert manifest["autoencoder_training"]["stage"] == "decoder"
    assert manifest["autoencoder_training"]["encoder_training"]["stage"] == "autoencoder"
    with pytest.raises(InvalidRequestError, match="stage decoder needs the trained autoencoder"):
        train_imagegen(tiny("decoder", tmp_path / "nothing", images))


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


@pytest.fixture(scope="module")
def alignment(images, embedder):
    from omnicoach.models.image_encoder import ImageEncoder
    from omnicoach.training.alignment import AlignmentConfig, train_alignment

    config = AlignmentConfig(images=images, per_exercise=4, steps=150)
    trained, summary = train_alignment(config, ImageEncoder(grid=1), embedder, log=print)
    return trained, summary


def test_the_alignment_heads_tell_held_out_renders_apart(alignment, tmp_path):
    from omnicoach.models.alignment import load_alignment
    from omnicoach.training.alignment import ship as ship_alignment

    trained, summary = alignment
    assert summary["exercises"] == 3 and summary["held_out_images"] == 6
    # Three exercises: chance is 1/3; the right prompt scores above a wrong one.
    assert summary["zero_shot_accuracy"] > 1 / 3, summary
    assert summary["clip_score_right"] > summary["clip_score_wrong"], summary
    ship_alignment(trained, summary, tmp_path / "alignment", "test", 0.0, seed=0)
    loaded = load_alignment(tmp_path / "alignment", trained.image_encoder, trained.embedder)
    pixels = torch.zeros(1, 3, 64, 64, dtype=torch.uint8)
    assert torch.allclose(loaded.images(pixels), trained.images(pixels))


def test_the_generator_evaluation_reports_every_sampler(autoencoder, images, alignment, tmp_path):
    from omnicoach.evaluation.image_generation import ImageGenEvaluation, write_report

    out = tmp_path / "unet"
    train_imagegen(tiny("unet", out, images, autoencoder=autoencoder), log=lambda *_: None)
    ship(out, tmp_path / "imagegen", "test", started=0.0)
    pipeline = load_generator(tmp_path / "imagegen")
    evaluation = ImageGenEvaluation(pipeline, alignment[0], images, exercises=EXERCISES)
    report = evaluation.run(samplers=(("ddim", 3), ("dpm-solver++", 2)))
    assert report["images_per_sampler"] == 9  # 3 exercises × 3 held-out wordings
    assert [(s["sampler"], s["unet_evaluations"]) for s in report["samplers"]] == [
        ("ddim", 6),
        ("dpm-solver++", 4),
    ]
    for figures in (*report["samplers"], report["real"], report["through_autoencoder"]):
        assert 0 <= figures["recognised"] <= 1 and figures["clip_score"] >= 0
    assert report["real"]["fid_train_vs_test"] >= 0
    write_report(report, tmp_path / "report")
    assert "FID" in (tmp_path / "report" / "README.md").read_text()
    assert (tmp_path / "report" / "samples.png").is_file()

    sweep = evaluation.sweep_guidance([1.0, 3.0], steps=2)
    assert [row["guidance_scale"] for row in sweep] == [1.0, 3.0]
    assert all(0 <= row["recognised"] <= 1 for row in sweep)
    assert evaluation.guidance == DEFAULT_GUIDANCE  # the sweep leaves the evaluation's own scale
    # A different scale draws different pictures (the scale reaches the pipeline).
    first, second = (evaluation.generate(["tree pose"], 2, seed=0) for _ in (0, 1))
    assert torch.equal(first, second)
    assert not torch.equal(first, evaluation.generate(["tree pose"], 2, seed=0, guidance=1.0))


def test_the_shipped_alignment_model_recognises_held_out_renders(images, embedder):
    """artifacts/alignment (93 % zero-shot over 89 exercises on 1,780 test renders, its
    manifest) on six test renders here, among all 89 exercises."""
    from omnicoach.config import REPO
    from omnicoach.data.drawing_dataset import load_pixels
    from omnicoach.models.alignment import load_alignment
    from omnicoach.models.image_encoder import ImageEncoder

    shipped = load_alignment(REPO / "artifacts" / "alignment", ImageEncoder(grid=1), embedder)
    entries = load_entries()
    labels = [prompts(entry, HELD_OUT_TEMPLATES[:1])[0] for entry in entries]
    pixels, ids = load_pixels(images / "test")
    named = [entries[i]["id"] for i in shipped.classify(pixels, labels).tolist()]
    assert sum(n == i for n, i in zip(named, ids, strict=True)) >= 4, (named, ids)


def test_the_shipped_generator_loads_and_draws_the_same_picture_from_the_same_seed():
    """artifacts/imagegen (its quality: reports/imagegen) through the server's loader."""
    from omnicoach.config import REPO
    from omnicoach.models.image_generator import load_image_generator

    drawing = load_image_generator(REPO / "artifacts" / "imagegen")
    assert drawing.name == "omnicoach-imagegen" and drawing.native_size == 64
    first, seed, lora = drawing.generate("draw a person doing tree pose", steps=4, seed=5)
    again, _, _ = drawing.generate("draw a person doing tree pose", steps=4, seed=5)
    other, _, _ = drawing.generate("draw a person doing a push-up", steps=4, seed=5)
    assert seed == 5 and lora is None and first[0].size == (64, 64)
    assert first[0].tobytes() == again[0].tobytes()
    assert first[0].tobytes() != other[0].tobytes()  # the prompt steers the picture
    big, _, _ = drawing.generate("tree pose", steps=2, seed=5, size="256x256")
    assert big[0].size == (256, 256)
