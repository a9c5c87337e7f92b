"""The vision-language model: image tokens in the prompt, LLaVA data, both training stages."""

import json

import pytest
import torch
from PIL import Image, ImageDraw

from omnicoach.data.vlm_dataset import load_llava
from omnicoach.errors import InvalidRequestError
from omnicoach.models.image_encoder import ImageEncoder, feature_cache, square
from omnicoach.models.vision_language import (
    IGNORE,
    IMAGE_MARKER,
    Projector,
    language_loss,
    read_projector,
    tokenize_with_image,
)
from omnicoach.training.vlm import VLMConfig, train_vlm


@pytest.fixture(scope="module")
def encoder():
    return ImageEncoder(grid=2)


@pytest.fixture(scope="module")
def shapes(tmp_path_factory):
    """A LLaVA JSON over 24 pictures of two kinds (a red disc, a blue bar): a task small
    enough to learn in a few steps."""
    folder = tmp_path_factory.mktemp("shapes")
    records = []
    for i in range(24):
        kind = ("disc", "bar")[i % 2]
        image = Image.new("RGB", (96, 96), (240, 240, 240))
        draw = ImageDraw.Draw(image)
        offset = i % 5 * 4
        if kind == "disc":
            draw.ellipse((20 + offset, 20, 70 + offset, 70), fill=(200, 30, 30))
        else:
            draw.rectangle((10, 40 + offset, 86, 56 + offset), fill=(30, 30, 200))
        image.save(folder / f"{i}.png")
        records.append(
            {
                "id": str(i),
                "image": f"{i}.png",
                "conversations": [
                    {"from": "human", "value": f"{IMAGE_MARKER}\nWhat is this?"},
                    {"from": "gpt", "value": f"A {kind}."},
                ],
            }
        )
    records.append({"id": "text-only", "conversations": records[0]["conversations"]})
    (folder / "shapes.json").write_text(json.dumps(records))
    return folder / "shapes.json"


def test_the_image_marker_becomes_image_positions_without_loss(llm):
    messages = [
        {"role": "user", "content": f"{IMAGE_MARKER}\nWhat exercise is this?"},
        {"role": "assistant", "content": "This is Boat Pose."},
    ]
    row = tokenize_with_image(llm.tokenizer, messages, image_tokens=9)
    start = row["image_start"]
    assert start is not None
    assert row["labels"][start : start + 9] == [IGNORE] * 9
    # The marker's own text is gone, the question and the answer are intact.
    text = llm.tokenizer.decode(row["input_ids"][start + 9 :])
    assert IMAGE_MARKER not in text and text.lstrip().startswith("What exercise is this?")
    pairs = zip(row["input_ids"], row["labels"], strict=True)
    answer = [token for token, label in pairs if label != IGNORE]
    assert llm.tokenizer.decode(answer).startswith("This is Boat Pose.")
    text_only = [{"role": "user", "content": "What is Boat Pose?"}, messages[1]]
    without = tokenize_with_image(llm.tokenizer, text_only, image_tokens=9)
    assert without["image_start"] is None


def test_llava_json_loads_and_bad_records_are_named(shapes, tmp_path):
    samples = load_llava(shapes)
    assert len(samples) == 24  # the text-only record is skipped
    assert samples[0]["messages"][0] == {"role": "user", "content": "<image>\nWhat is this?"}
    assert samples[0]["image"].is_file()

    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps([{"image": "x.png", "conversations": [{"value": "hi"}]}]))
    with pytest.raises(InvalidRequestError, match=r"bad.json\[0\].*from"):
        load_llava(bad)
    bad.write_text(json.dumps([{"image": "missing.png", "conversations": []}]))
    with pytest.raises(InvalidRequestError, match="needs a human turn"):
        load_llava(bad)
    records = json.loads(shapes.read_text())[:1]
    records[0]["image"] = "missing.png"
    bad.write_text(json.dumps(records))
    with pytest.raises(InvalidRequestError, match="does not exist"):
        load_llava(bad, shapes.parent)


def test_features_are_cached_and_only_new_images_are_encoded(encoder, shapes):
    folder = shapes.parent
    names = [f"{i}.png" for i in range(4)]
    first = feature_cache(encoder, folder, names, progress=False)
    assert first.shape == (4, 4, 1280)
    cache = folder / f"features-{encoder.name}.pt"
    stamp = cache.stat().st_mtime_ns
    assert torch.equal(feature_cache(encoder, folder, names[::-1], progress=False), first.flip(0))
    assert feature_cache(encoder, folder, names[:3], progress=False).shape[0] == 3
    assert cache.stat().st_mtime_ns == stamp  # read, not recomputed
    more = feature_cache(encoder, folder, [*names, "4.png"], progress=False)
    assert torch.equal(more[:4], first) and cache.stat().st_mtime_ns != stamp
    alone = encoder.encode([Image.open(folder / "4.png").convert("RGB")]).half().float()
    assert torch.allclose(more[4], alone[0])


def test_photos_are_padded_to_a_square_not_cropped():
    photo = Image.new("RGB", (300, 100), (10, 200, 10))
    squared = square(photo, 224)
    assert squared.size == (224, 224)
    assert squared.getpixel((112, 112)) == (10, 200, 10)


def test_the_projector_normalises_features_and_gives_k_tokens_per_feature():
    projector = Projector(feature_dim=32, hidden=8, tokens_per_feature=3)
    features = torch.randn(2, 4, 32)
    assert projector(features).shape == (2, 12, 8)  # 4 feature tokens × 3
    # Layer-normalised input: the scale of the encoder's features does not matter.
    assert torch.allclose(projector(features * 100), projector(features), atol=1e-4)


def test_the_loss_on_answer_positions_only_equals_the_models_own(tiny_model):
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(tiny_model)
    torch.manual_seed(0)
    ids = torch.randint(0, 1000, (2, 12))
    mask = torch.ones_like(ids)
    mask[1, 9:] = 0  # a padded row
    labels = ids.clone()
    labels[:, :5] = IGNORE  # the prompt
    labels[1, 9:] = IGNORE
    embeds = model.get_input_embeddings()(ids)
    expected = model(inputs_embeds=embeds, attention_mask=mask, labels=labels).loss
    assert torch.allclose(language_loss(model, embeds, mask, labels), expected, atol=1e-5)


def test_both_stages_learn_and_stage_two_starts_from_stage_one(tiny_model, shapes, tmp_path):
    common = dict(
        train=shapes,
        chat_model=str(tiny_model),
        grid=2,
        tokens_per_feature=2,
        batch_size=4,
        epochs=6,
        eval_every=10,
        checkpoint_every=10,
        patience=100,
        model_cache=tmp_path / "cache",
    )
    first = train_vlm(VLMConfig(stage=1, out=tmp_path / "stage1", **common), log=lambda *_: None)
    rows = (tmp_path / "stage1" / "loss.csv").read_text().splitlines()[1:]
    losses = [float(row.split(",")[1]) for row in rows]
    assert first["steps"] == len(rows) == 36  # 6 epochs of 24 × 0.9 pictures in batches of 4
    assert sum(losses[-6:]) < sum(losses[:6])  # the image tokens move towards the caption words
    assert (tmp_path / "stage1" / "projector.safetensors").is_file()
    assert not (tmp_path / "stage1" / "adapter").exists()
    assert (tmp_path / "stage1" / "loss.png").is_file()

    with pytest.raises(InvalidRequestError, match="--projector"):
        train_vlm(VLMConfig(stage=2, out=tmp_path / "nope", **common), log=lambda *_: None)
    second = train_vlm(
        VLMConfig(stage=2, out=tmp_path / "stage2", projector=tmp_path / "stage1", **common),
        log=lambda *_: None,
    )
    assert (tmp_path / "stage2" / "adapter" / "adapter_config.json").is_file()
    rows = (tmp_path / "stage2" / "loss.csv").read_text().splitlines()[1:]
    losses = [float(row.split(",")[1]) for row in rows]
    assert second["steps"] == 36 and sum(losses[-6:]) < sum(losses[:6])
    vision, projector = read_projector(tmp_path / "stage2")
    assert vision["stage"] == 2 and vision["grid"] == 2 and vision["tokens_per_feature"] == 2
    assert second["image_tokens"] == 8  # 2×2 feature tokens × 2
    assert set(projector.state_dict()) == {
        "net.0.weight", "net.0.bias", "net.2.weight", "net.2.bias",
    }  # fmt: skip


def test_a_stopped_stage_resumes_from_its_checkpoint(tiny_model, shapes, tmp_path):
    config = VLMConfig(
        stage=1,
        train=shapes,
        out=tmp_path / "run",
        chat_model=str(tiny_model),
        grid=2,
        batch_size=4,
        epochs=2,
        max_steps=4,
        checkpoint_every=2,
        eval_every=2,
        model_cache=tmp_path / "cache",
    )
    assert train_vlm(config, log=lambda *_: None)["steps"] == 4
    config.max_steps = 8
    lines = []
    assert train_vlm(config, log=lines.append)["steps"] == 8
    assert any("resumed from step 4" in line for line in lines)


def test_image_positions_read_their_embeddings_in_both_engines_and_cache_per_image(llm):
    """Random 'image' embeddings at the marker: the fast engine and transformers' forward
    agree on the greedy answer, and a different image is not served from the prefix cache."""
    from omnicoach.models.batch_engine import BatchEngine
    from omnicoach.models.llama_decoder import LlamaDecoder
    from omnicoach.models.llm import ChatLLM, ImageInput, SamplingParams

    torch.manual_seed(0)
    scale = llm.model.get_input_embeddings().weight.std()
    first = ImageInput(torch.randn(4, 576) * scale, "ab" * 32)
    second = ImageInput(torch.randn(4, 576) * scale, "cd" * 32)
    messages = [{"role": "user", "content": f"{IMAGE_MARKER}\nDescribe the picture."}]
    greedy = SamplingParams(temperature=0.0, max_tokens=12)

    reference = ChatLLM(llm.tokenizer, llm.model, llm.name, llm.context_length)
    decoder = LlamaDecoder(llm.model, "fp32", slots=2, max_len=512)
    engine = BatchEngine(decoder, llm.end_token_ids, max_batch=1)
    fast = ChatLLM(llm.tokenizer, llm.model, llm.name, llm.context_length, engine=engine)
    try:
        prompt = fast.build_prompt(messages, 12, first)
        image_ids = [t for t in prompt.token_ids if t < 0]
        assert image_ids == first.placeholders() and len(set(image_ids)) == 4
        for image in (first, second):
            expected = reference.complete(messages, greedy, image).text
            assert fast.complete(messages, greedy, image).text == expected
        # The second image shared the text before the image only: its positions were computed.
        assert engine.reused_tokens < len(prompt.token_ids)
        assert (
            fast.complete(messages, greedy, first).text
            == reference.complete(messages, greedy, first).text
        )
    finally:
        engine.close()


def test_the_evaluation_reads_which_exercise_an_answer_names():
    from omnicoach.evaluation.vision import bengali_share
    from omnicoach.knowledge.base import load_entries
    from omnicoach.knowledge.names import NameIndex

    names = NameIndex(load_entries())
    assert names.first("This is Boat Pose (Paripurna Navasana).") == "boat-pose"
    # The first name mentioned wins, and a longer name beats its prefix at the same place.
    text = "This is Downward-Facing Dog, not Upward-Facing Dog."
    assert names.first(text) == "downward-facing-dog"
    assert names.first("এটি নৌকাসন (বোট পোজ)।") == "boat-pose"
    assert names.first("I cannot tell from the picture.") is None
    assert bengali_share("এটি নৌকাসন") == 1.0 and bengali_share("This is boat") == 0.0


@pytest.mark.slow
def test_the_evaluation_asks_the_shipped_model_about_held_out_pictures(
    settings, registry, tmp_path
):
    """Three exercises, two held-out pictures each, through the served vision model: the
    report has its tables, every answer and the side-by-side examples."""
    from omnicoach.assistant import Assistant
    from omnicoach.data.exercise_images import write_dataset
    from omnicoach.evaluation.vision import VisionEvaluation, write_report

    exercises = ["boat-pose", "tree-pose", "barbell-back-squat"]
    write_dataset(tmp_path, 3, "train", exercises, progress=False)
    write_dataset(tmp_path, 2, "test", exercises, progress=False)
    evaluation = VisionEvaluation(Assistant(settings, registry), tmp_path)
    report = evaluation.run(per_exercise=2, how_per_exercise=1)
    assert report["exercises"] == 3 and report["vlm"]["name_accuracy"]["all"]["n"] == 6
    assert {a["exercise_id"] for a in report["answers"]} == set(exercises)
    assert len(report["answers"]) == 6 and len(report["examples"]) == 3
    # The shipped model (reports/vlm: 94 % of 356 pictures) names most of these six.
    assert report["vlm"]["name_accuracy"]["all"]["accuracy"] >= 0.5, report["answers"]
    # Served, a rightly named picture's answer gives every step of the knowledge base.
    for example in report["examples"]:
        if example["served"]["correct"]:
            assert example["served"]["step_recall"] == 1.0, example
    write_report(report, tmp_path, tmp_path / "report")
    text = (tmp_path / "report" / "README.md").read_text()
    assert "nearest neighbour" in text and "Side by side" in text and "served" in text
    assert (tmp_path / "report" / "example-3.png").is_file()
