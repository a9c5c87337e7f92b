"""Drawing through a real server: POST /generate, OpenAI's /v1/images/generations (with the
official client), a picture request in the chat, and every bad setting a clear 400.

The server draws with a tiny randomly initialised Stable Diffusion pipeline saved to a temp
directory and named by OMNICOACH_IMAGE_MODEL — the path a real SD 1.5 / SDXL directory takes
(DiffusionPipeline.from_pretrained). Its pictures are noise; what is tested is the plumbing.
The trained generator's quality is measured by `omnicoach eval imagegen` (reports/imagegen).
"""

import base64
import io
import json
import re
import time
import zipfile

import httpx
import openai
import pytest
import torch
from PIL import Image
from playwright.sync_api import expect, sync_playwright

from tests.browser import launch, page_opener, screenshot
from tests.server_process import ServerProcess, worker_process

pytestmark = pytest.mark.slow


def tiny_pipeline(directory):
    """A Stable Diffusion pipeline of random weights: 16×16 pictures, a 2-layer BERT over
    MiniLM's tokenizer (no CLIP exists offline)."""
    from diffusers import (
        AutoencoderKL,
        DPMSolverMultistepScheduler,
        StableDiffusionPipeline,
        UNet2DConditionModel,
    )
    from transformers import AutoTokenizer, BertConfig, BertModel

    from omnicoach.models.bundled import minilm_dir

    torch.manual_seed(0)
    tokenizer = AutoTokenizer.from_pretrained(minilm_dir(), model_max_length=16)
    text_encoder = BertModel(
        BertConfig(
            vocab_size=tokenizer.vocab_size,
            hidden_size=32,
            num_hidden_layers=2,
            num_attention_heads=2,
            intermediate_size=64,
        )
    )
    unet = UNet2DConditionModel(
        sample_size=8,
        in_channels=4,
        out_channels=4,
        block_out_channels=(32, 32),
        layers_per_block=1,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
        cross_attention_dim=32,
        attention_head_dim=8,
        norm_num_groups=8,
    )
    vae = AutoencoderKL(
        block_out_channels=(32, 32),
        down_block_types=("DownEncoderBlock2D",) * 2,
        up_block_types=("UpDecoderBlock2D",) * 2,
        latent_channels=4,
        norm_num_groups=8,
    )
    pipeline = StableDiffusionPipeline(
        vae=vae,
        text_encoder=text_encoder,
        tokenizer=tokenizer,
        unet=unet,
        scheduler=DPMSolverMultistepScheduler(steps_offset=1),
        safety_checker=None,
        feature_extractor=None,
        requires_safety_checker=False,
    )
    pipeline.save_pretrained(directory)
    return directory


@pytest.fixture(scope="module")
def settings(tmp_path_factory):
    model = tiny_pipeline(tmp_path_factory.mktemp("tiny-sd"))
    return {"data_dir": tmp_path_factory.mktemp("drawing"), "image_model": model, "image_steps": 2}


@pytest.fixture(scope="module")
def server(settings):
    with ServerProcess(settings["data_dir"] / "server.log", **settings) as process:
        yield process


@pytest.fixture(scope="module")
def worker(server, settings):
    """A real `omnicoach worker` for the LoRA jobs; started once the server has migrated."""
    with worker_process(settings["data_dir"] / "worker.log", **settings) as process:
        yield process


def png(b64: str) -> Image.Image:
    return Image.open(io.BytesIO(base64.b64decode(b64)))


def test_generate_draws_n_pictures_again_by_seed_and_keeps_them(server):
    http = httpx.Client(base_url=server.url, timeout=120)
    body = {"prompt": "a person doing tree pose", "n": 2, "seed": 7, "guidance": 3.0}
    first = http.post("/generate", json=body)
    assert first.status_code == 200, first.text
    drawn = first.json()
    assert drawn["seed"] == 7 and drawn["steps"] == 2 and len(drawn["images"]) == 2
    assert [png(i["b64_png"]).size for i in drawn["images"]] == [(16, 16), (16, 16)]
    # Picture i is seed + i: the second drawn alone from seed 8 is the same picture.
    again = http.post("/generate", json=body | {"n": 1, "seed": 8}).json()
    assert again["images"][0]["b64_png"] == drawn["images"][1]["b64_png"]
    stored = http.get(drawn["images"][0]["url"])
    assert stored.headers["content-type"] == "image/png"
    assert stored.content == base64.b64decode(drawn["images"][0]["b64_png"])
    files = http.get("/v1/files", params={"purpose": "image_generation"}).json()["data"]
    assert {i["file_id"] for i in drawn["images"]} <= {f["id"] for f in files}


def test_openai_images_generate_gives_urls_or_base64(server):
    client = openai.OpenAI(base_url=f"{server.url}/v1", api_key="unused")
    result = client.images.generate(prompt="warrior II", response_format="b64_json", n=1)
    assert png(result.data[0].b64_json).size == (16, 16)
    result = client.images.generate(prompt="warrior II", size="32x32")
    picture = Image.open(io.BytesIO(httpx.get(result.data[0].url).content))
    assert picture.size == (32, 32)  # a real pipeline draws at the size asked


@pytest.mark.parametrize(
    ("body", "param", "words"),
    [
        ({"prompt": "  "}, "prompt", "prompt is empty"),
        ({"prompt": "tree pose", "n": 9}, "n", "n must be 1–4"),
        ({"prompt": "tree pose", "steps": 0}, "steps", "steps must be 1–100"),
        ({"prompt": "tree pose", "size": "big"}, "size", 'size must look like "256x256"'),
        ({"prompt": "tree pose", "size": "30x30"}, "size", "multiples of 8"),
        ({"prompt": "tree pose", "guidance": -1}, "guidance", "guidance must be 0–30"),
    ],
)
def test_bad_settings_are_400s_naming_the_field(server, body, param, words):
    response = httpx.post(f"{server.url}/generate", json=body, timeout=60)
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert words in error["message"] and error["param"] == param


def test_an_unknown_field_is_a_422_naming_it(server):
    body = {"prompt": "tree pose", "colour": "red"}
    response = httpx.post(f"{server.url}/generate", json=body, timeout=60)
    assert response.status_code == 422  # as for every body that does not fit its schema
    assert response.json()["error"]["param"] == "colour"


def test_a_picture_request_in_the_chat_is_drawn_and_kept_with_the_answer(server):
    http = httpx.Client(base_url=server.url, timeout=120)
    conversation = http.post("/conversations", json={}).json()["id"]
    body = {
        "model": "smollm2-135m-instruct",
        "conversation_id": conversation,
        "messages": [{"role": "user", "content": "Draw a person doing warrior II"}],
    }
    response = http.post("/v1/chat/completions", json=body)
    assert response.status_code == 200, response.text
    answer = response.json()
    assert answer["route"]["label"] == "image_generation"
    assert answer["model"].startswith("tiny-sd")  # the directory's name
    assert (
        "Here is a picture for “Draw a person doing warrior II”"
        in (answer["choices"][0]["message"]["content"])
    )
    (image,) = answer["images"]
    assert http.get(image["url"]).headers["content-type"] == "image/png"
    stored = http.get(f"/conversations/{conversation}/messages").json()["data"]
    assert stored[1]["images"] == [image["file_id"]]


def test_the_page_shows_the_drawn_picture_under_the_answer(server, request):
    with sync_playwright() as playwright:
        browser = launch(playwright)
        with page_opener(browser, server, request.node.name, {}) as opener:
            page, _ = opener()
            page.locator("#composer-input").fill("Draw a person doing tree pose")
            page.keyboard.press("Enter")
            answer = page.locator(".message.assistant").last
            expect(answer.locator(".route-note")).to_contain_text("Picture request")
            picture = answer.locator(".message-images .thumb img")
            expect(picture).to_have_count(1, timeout=60_000)  # shown once the answer is stored
            expect(picture).to_have_attribute("src", re.compile(r"^blob:"))
            screenshot(page, "drawn-in-chat")
        browser.close()


def zipped(entries: dict[str, bytes]) -> bytes:
    data = io.BytesIO()
    with zipfile.ZipFile(data, "w") as archive:
        for name, content in entries.items():
            archive.writestr(name, content)
    return data.getvalue()


def picture_bytes(colour: str) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (40, 40), colour).save(out, "PNG")
    return out.getvalue()


@pytest.mark.parametrize(
    ("entries", "words"),
    [
        ({"notes.txt": b"hello"}, "the ZIP holds no images"),
        (
            {
                "a.png": picture_bytes("red"),
                "metadata.jsonl": b'{"file_name": "a.png", "caption": "a red square"}\n',
            },
            '"caption"',
        ),
        ({"../escape.png": picture_bytes("red")}, ".."),
        ({"broken.png": b"not a picture at all"}, "broken.png"),
    ],
)
def test_a_bad_training_zip_is_a_400_listing_its_problems(server, entries, words):
    files = {"file": ("pictures.zip", zipped(entries), "application/zip")}
    response = httpx.post(f"{server.url}/train", files=files, data={"trigger": "zqx"}, timeout=60)
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["code"] == "invalid_zip" and error["param"] == "file"
    assert any(words in problem for problem in error["problems"]), error


def test_a_zip_trains_a_lora_that_its_trigger_word_calls_up(server, worker):
    http = httpx.Client(base_url=server.url, timeout=120)
    prompt = {"prompt": "a zqxstyle square", "seed": 3}
    before = http.post("/generate", json=prompt).json()
    assert before["lora"] is None
    pictures = {f"{i}.png": picture_bytes(c) for i, c in enumerate(["red", "orange"] * 3)}
    form = {"trigger": "zqxstyle", "steps": "40", "learning_rate": "0.002"}
    files = {"file": ("squares.zip", zipped(pictures), "application/zip")}
    created = http.post("/train", files=files, data=form)
    assert created.status_code == 201, created.text
    job = created.json()
    assert job["kind"] == "train_image_lora"
    assert job["dataset"] == {"layout": "images_only", "pictures": 6}
    deadline = time.monotonic() + 300
    while (job := http.get(f"/jobs/{job['id']}").json())["status"] not in ("succeeded", "failed"):
        assert time.monotonic() < deadline, job
        time.sleep(1)
    assert job["status"] == "succeeded", job
    assert {"lora.json", "sample-000000.png", "sample-000040.png"} <= set(job["artifacts"])
    assert len(job["metrics"]["loss"]) == 40
    described = json.loads(http.get(f"/jobs/{job['id']}/artifacts/lora.json").content)
    assert described["trigger"] == "zqxstyle" and described["pictures"] == 6

    after = http.post("/generate", json=prompt).json()  # the trigger word calls it up
    assert after["lora"] == "zqxstyle"
    assert after["images"][0]["b64_png"] != before["images"][0]["b64_png"]
    plain = http.post("/generate", json={"prompt": "a square", "seed": 3}).json()
    assert plain["lora"] is None
    named = http.post("/generate", json={"prompt": "a square", "lora": "nope"})
    assert named.status_code == 400 and named.json()["error"]["param"] == "lora"

    # Trained again under the same name, the new LoRA replaces the old one in the server.
    files = {"file": ("squares.zip", zipped(pictures), "application/zip")}
    again = http.post("/train", files=files, data=form | {"steps": "10"}).json()
    while (again := http.get(f"/jobs/{again['id']}").json())["status"] not in (
        "succeeded",
        "failed",
    ):
        assert time.monotonic() < deadline + 300, again
        time.sleep(1)
    assert again["status"] == "succeeded", again
    retrained = http.post("/generate", json=prompt).json()
    assert retrained["lora"] == "zqxstyle"
    assert retrained["images"][0]["b64_png"] != after["images"][0]["b64_png"]


def test_a_bad_trigger_word_is_refused_and_leaves_no_upload(server):
    http = httpx.Client(base_url=server.url, timeout=60)

    def kept() -> int:
        return len(http.get("/v1/files", params={"purpose": "image_training"}).json()["data"])

    before = kept()
    files = {"file": ("squares.zip", zipped({"a.png": picture_bytes("red")}), "application/zip")}
    response = http.post("/train", files=files, data={"trigger": "two words"})
    assert response.status_code == 422, response.text
    assert response.json()["error"]["param"] == "params.trigger"
    assert kept() == before
