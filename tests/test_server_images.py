"""Pictures in /v1/chat/completions on a real server: bad images are clear 400s, and a picture
goes to the vision model (artifacts/vlm), is named, and stays with its stored conversation. How
well the model names exercises overall is measured by `omnicoach eval vlm` (reports/vlm)."""

import base64
import io

import httpx
import pytest
from PIL import Image

from omnicoach.data.exercise_images import TEST_SEEDS, render_exercise
from omnicoach.images.decode import encode_png_data_url
from omnicoach.knowledge.base import load_entries
from tests.server_process import ServerProcess

pytestmark = pytest.mark.slow

CHAT = "smollm2-135m-yoga"


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    with ServerProcess(tmp_path_factory.mktemp("server") / "server.log") as process:
        yield process


def ask(server, content, **extra):
    body = {"model": CHAT, "messages": [{"role": "user", "content": content}], **extra}
    return httpx.post(f"{server.url}/v1/chat/completions", json=body, timeout=300)


def image_part(url: str) -> dict:
    return {"type": "image_url", "image_url": {"url": url}}


def data_url(data: bytes, media_type: str = "image/png") -> str:
    return f"data:{media_type};base64,{base64.b64encode(data).decode()}"


def png_bytes(image: Image.Image) -> bytes:  # noqa: D103
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def bomb() -> bytes:
    """10,000 × 10,000 black pixels: a few kilobytes of PNG, 100 M pixels once decoded."""
    return png_bytes(Image.new("1", (10_000, 10_000)))


@pytest.mark.parametrize(
    ("url", "code", "words"),
    [
        (data_url(b"just some text, not a picture"), "invalid_image", "is not an image"),
        (data_url(png_bytes(Image.new("RGB", (64, 64), "red"))[:60]), "invalid_image", "truncated"),
        (data_url(bomb()), "invalid_image", "over the limit of 40,000,000 pixels"),
        ("https://example.com/pose.jpg", "unsupported_image_url", "upload it to /v1/files"),
        ("data:image/png;base64,@@@", "invalid_image_url", "not valid base64"),
    ],
)
def test_a_bad_image_is_a_400_naming_its_part(server, url, code, words):
    response = ask(server, [{"type": "text", "text": "What is this?"}, image_part(url)])
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["code"] == code and words in error["message"]
    assert error["param"] == "messages[0].content[1].image_url.url"


def test_an_unknown_file_id_is_a_404_and_assistants_cannot_send_images(server):
    response = ask(server, [image_part("file-doesnotexist")])
    assert response.status_code == 404 and response.json()["error"]["code"] == "file_not_found"
    tiny = Image.new("RGB", (8, 8))
    body = {
        "model": CHAT,
        "messages": [
            {"role": "user", "content": "hi"},
            {"role": "assistant", "content": [image_part(encode_png_data_url(tiny))]},
            {"role": "user", "content": "and?"},
        ],
    }
    response = httpx.post(f"{server.url}/v1/chat/completions", json=body, timeout=60)
    assert response.status_code == 400
    assert response.json()["error"]["param"] == "messages[1].content[0]"


def load_entries_by_id() -> dict:
    return {entry["id"]: entry for entry in load_entries()}


def say(http, conversation: str, text: str, picture: Image.Image | None, max_tokens: int, **extra):
    """A user turn in the stored conversation, with PICTURE when given; the response."""
    content = text
    if picture is not None:
        content = [{"type": "text", "text": text}, image_part(encode_png_data_url(picture))]
    body = {
        "model": CHAT,
        "conversation_id": conversation,
        "temperature": 0,
        "max_tokens": max_tokens,
        "messages": [{"role": "user", "content": content}],
        **extra,
    }
    return http.post("/v1/chat/completions", json=body)


def test_a_picture_is_answered_by_the_vision_model_and_kept_with_the_conversation(server):
    http = httpx.Client(base_url=server.url, timeout=300)
    # Held-out seeds: pictures the model never saw in training.
    picture = render_exercise("downward-facing-dog", TEST_SEEDS[3])
    conversation = http.post("/conversations", json={}).json()["id"]
    first = say(http, conversation, "What exercise is this?", picture, max_tokens=48)
    assert first.status_code == 200, first.text
    answer = first.json()
    assert answer["model"].endswith("-vision")
    assert "Downward-Facing Dog" in answer["choices"][0]["message"]["content"]

    # The picture is stored with the question; a follow-up without one still sees it.
    messages = http.get(f"/conversations/{conversation}/messages").json()["data"]
    assert [m["role"] for m in messages] == ["user", "assistant"]
    (file_id,) = messages[0]["images"]
    stored = http.get(f"/v1/files/{file_id}/content")
    assert stored.headers["content-type"] == "image/png"
    assert Image.open(io.BytesIO(stored.content)).size == picture.size
    # The model named it; the steps are the knowledge base's, with it as the source.
    follow_up = say(http, conversation, "How do I do it?", None, max_tokens=400).json()
    assert follow_up["model"].endswith("-vision")
    steps = load_entries_by_id()["downward-facing-dog"]["steps"]["en"]
    assert follow_up["choices"][0]["message"]["content"].startswith(
        f"How to do Downward-Facing Dog [1]:\n1. {steps[0]}"
    )
    # An inversion: its cautions come with it.
    assert [s["id"] for s in follow_up["sources"]] == [
        "kb:downward-facing-dog:en:steps",
        "kb:downward-facing-dog:en:cautions",
    ]
    stored = http.get(f"/conversations/{conversation}/messages").json()["data"]
    assert stored[-1]["sources"] == follow_up["sources"]

    # A new picture is stored with its own message (it is the visual context from now on).
    other = render_exercise("tree-pose", TEST_SEEDS[5])
    second = say(http, conversation, "What exercise is this?", other, max_tokens=48).json()
    assert second["model"].endswith("-vision")
    assert "Tree Pose" in second["choices"][0]["message"]["content"]
    messages = http.get(f"/conversations/{conversation}/messages").json()["data"]
    assert [len(m["images"]) for m in messages] == [1, 0, 0, 0, 1, 0]
    assert messages[4]["images"] != messages[0]["images"]


def test_without_grounding_the_vision_model_answers_alone_and_max_tokens_holds(server):
    http = httpx.Client(base_url=server.url, timeout=300)
    picture = render_exercise("boat-pose", TEST_SEEDS[6])
    conversation = http.post("/conversations", json={}).json()["id"]
    question = "What is this exercise and how do I do it?"
    alone = say(http, conversation, question, picture, max_tokens=24, rag=False).json()
    assert "sources" not in alone and alone["choices"][0]["message"]["content"].strip()
    grounded = say(http, conversation, question, picture, max_tokens=12).json()
    assert grounded["choices"][0]["finish_reason"] == "length"
    assert grounded["usage"]["completion_tokens"] == 12
    assert grounded["choices"][0]["message"]["content"].startswith("This is Boat Pose")
