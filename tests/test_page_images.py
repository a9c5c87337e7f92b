"""Images on the chat page, in Debian's Chromium against a real server that requires a key:
attach (file picker, paste, drag and drop), the thumbnail and its remove button, non-image
files refused inline, the content parts sent, stored images fetched with the page's key, and a
held-out exercise picture answered with its name, steps and source.

Every test fails on a console error, an uncaught exception, a dialog or a request leaving
the server (tests.browser.PageWatch). Screenshots land in test-artifacts/page/.
"""

import base64
import io
import re

import httpx
import pytest
from PIL import Image, ImageDraw
from playwright.sync_api import Page, expect, sync_playwright

from omnicoach.data.exercise_images import TEST_SEEDS, render_exercise
from omnicoach.knowledge.base import load_entries
from tests.browser import launch, page_opener, screenshot
from tests.server_process import ServerProcess

pytestmark = pytest.mark.slow

CHAT = "smollm2-135m-instruct"
API_KEY = "image-page-key"
QUICK = {"maxTokens": 12, "temperature": 0}
HTTP_ERROR_LINE = r"Failed to load resource: the server responded with a status of"
ATTACHED = "#attachments .thumb img"


def picture(width: int, height: int, fmt: str = "PNG", transparent: bool = False) -> bytes:
    """A picture with some detail (JPEG would make a flat one suspiciously small)."""
    image = Image.new("RGBA" if transparent else "RGB", (width, height), (40, 120, 200, 255))
    draw = ImageDraw.Draw(image)
    for x in range(0, width, 37):
        draw.line([(x, 0), (width - x, height)], fill=(250, 200, 30, 255), width=5)
    if transparent:
        draw.ellipse([0, 0, width // 3, height // 3], fill=(0, 0, 0, 0))
    out = io.BytesIO()
    image.save(out, fmt)
    return out.getvalue()


def decoded(data_url: str) -> Image.Image:
    header, _, payload = data_url.partition(",")
    assert header.endswith(";base64"), header
    return Image.open(io.BytesIO(base64.b64decode(payload)))


def file_payload(name: str, mime: str, content: bytes) -> dict:
    return {"name": name, "mimeType": mime, "buffer": content}


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    data_dir = tmp_path_factory.mktemp("image-page")
    with ServerProcess(data_dir / "server.log", data_dir=data_dir, api_keys=API_KEY) as process:
        yield process


@pytest.fixture(scope="module")
def browser():
    with sync_playwright() as playwright:
        chromium = launch(playwright)
        yield chromium
        chromium.close()


@pytest.fixture
def open_page(browser, server, request):
    """open_page(fragment=…, allow=…) → (page, watch), with the API key in the page's storage."""
    key = {"cookies": [], "origins": [
        {"origin": server.url, "localStorage": [{"name": "omnicoach.apiKey", "value": API_KEY}]}
    ]}  # fmt: skip
    with page_opener(browser, server, request.node.name, QUICK) as opener:
        yield lambda **options: opener(storage_state=key, **options)


@pytest.fixture
def http(server):
    headers = {"Authorization": f"Bearer {API_KEY}"}
    with httpx.Client(base_url=server.url, headers=headers, timeout=60) as client:
        yield client


def data_transfer(page: Page, *files: tuple[str, str, bytes]):
    """A DataTransfer holding FILES ((name, type, bytes)…), as a drop or a paste carries them."""
    items = [
        {"name": name, "type": mime, "b64": base64.b64encode(content).decode()}
        for name, mime, content in files
    ]
    return page.evaluate_handle(
        """(items) => {
            const transfer = new DataTransfer();
            for (const {name, type, b64} of items) {
                const bytes = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
                transfer.items.add(new File([bytes], name, {type}));
            }
            return transfer;
        }""",
        items,
    )


def paste(page: Page, *files) -> None:
    transfer = data_transfer(page, *files)
    page.evaluate(
        """(transfer) => document.getElementById('composer-input').dispatchEvent(
            new ClipboardEvent('paste',
                               {clipboardData: transfer, bubbles: true, cancelable: true}))""",
        transfer,
    )


def drop(page: Page, *files, shot: str = "") -> None:
    """Drag FILES over the conversation (the page highlights it), then drop them there."""
    transfer = data_transfer(page, *files)
    page.dispatch_event("#messages", "dragenter", {"dataTransfer": transfer})
    page.dispatch_event("#messages", "dragover", {"dataTransfer": transfer})
    expect(page.locator("#drop-zone")).to_be_visible()
    expect(page.locator("#drop-zone")).to_contain_text("Drop an image")
    if shot:
        screenshot(page, shot)
    page.dispatch_event("#messages", "drop", {"dataTransfer": transfer})
    expect(page.locator("#drop-zone")).to_be_hidden()


def attached_url(page: Page) -> str:
    expect(page.locator(ATTACHED)).to_have_count(1)
    expect(page.locator(ATTACHED)).to_have_attribute("src", re.compile(r"^data:image/"))
    return page.locator(ATTACHED).get_attribute("src")


def test_attach_with_the_button_remove_and_refuse_other_files(open_page):
    page, _ = open_page()
    send_button = page.locator("#send")
    expect(send_button).to_be_disabled()
    expect(page.locator("#image-file")).to_have_attribute("accept", "image/*")

    with page.expect_file_chooser() as chooser:
        page.get_by_role("button", name="Attach image").click()
    assert chooser.value.is_multiple()
    chooser.value.set_files(file_payload("wide.png", "image/png", picture(1600, 900)))
    image = decoded(attached_url(page))  # scaled down, aspect kept; opaque → JPEG
    assert image.format == "JPEG" and image.size == (1024, 576)
    expect(send_button).to_be_enabled()  # an image alone can be sent
    expect(page.locator("#composer-note")).to_be_hidden()
    thumb = page.locator("#attachments .thumb")
    expect(thumb).to_have_attribute("aria-label", "Attached image “wide.png”: open it larger")
    unnamed = page.evaluate(
        """() => [...document.querySelectorAll('#composer button, #composer input')]
            .filter((e) => e.checkVisibility())
            .filter((e) => !(e.getAttribute('aria-label') || e.textContent.trim()))
            .map((e) => e.outerHTML.slice(0, 80))"""
    )
    assert unnamed == []
    screenshot(page, "image-attached")

    # The thumbnail opens the image larger; Escape closes it and focus returns.
    thumb.click()
    viewer = page.locator("#image-viewer")
    expect(viewer).to_be_visible()
    expect(viewer.locator("img")).to_have_attribute("src", re.compile(r"^data:image/jpeg"))
    page.keyboard.press("Escape")
    expect(viewer).to_be_hidden()
    expect(thumb).to_be_focused()

    page.get_by_role("button", name="Remove image").click()
    expect(page.locator("#attachments")).to_be_hidden()
    expect(send_button).to_be_disabled()
    expect(page.locator("#composer-input")).to_be_focused()

    # Not an image: said inline (no alert), nothing attached.
    page.set_input_files("#image-file", file_payload("notes.txt", "text/plain", b"plank 3x30s"))
    note = page.locator("#composer-note")
    expect(note).to_be_visible()
    expect(note).to_contain_text("“notes.txt” is not an image")
    expect(note).to_have_class("composer-note error")
    expect(page.locator("#attachments")).to_be_hidden()
    expect(send_button).to_be_disabled()


def test_paste_and_drop_attach_one_image(open_page):
    page, _ = open_page()
    # A transparent picture stays PNG (scaled down all the same).
    paste(page, ("image.png", "image/png", picture(1200, 800, transparent=True)))
    image = decoded(attached_url(page))
    assert image.format == "PNG" and image.size == (1024, 683)
    assert image.mode == "RGBA" and image.getextrema()[3][0] == 0
    expect(page.locator("#composer-note")).to_be_hidden()

    # A small JPEG dropped on the chat is sent as it is, and replaces the pasted image.
    small = picture(200, 100, "JPEG")
    drop(page, ("small.jpg", "image/jpeg", small), shot="image-drop-zone")
    url = attached_url(page)
    assert base64.b64decode(url.partition(",")[2]) == small
    expect(page.locator("#composer-note")).to_contain_text("One image per message")

    # Several at once: the last is kept, and the page says so; a non-image among them is named.
    drop(
        page,
        ("first.png", "image/png", picture(300, 300)),
        ("plan.pdf", "application/pdf", b"%PDF-1.4 not really"),
        ("last.png", "image/png", picture(400, 200)),
    )
    expect(page.locator("#composer-note")).to_contain_text("only the last one, “last.png”")
    expect(page.locator("#composer-note")).to_contain_text("“plan.pdf” is not an image")
    expect(page.locator(ATTACHED)).to_have_count(1)
    assert decoded(attached_url(page)).size == (400, 200)

    # A non-image alone: refused, and the image attached before stays.
    drop(page, ("song.mp3", "audio/mpeg", b"ID3 not really"))
    expect(page.locator("#composer-note")).to_contain_text("“song.mp3” is not an image")
    assert decoded(attached_url(page)).size == (400, 200)


def test_send_text_and_image_as_content_parts(open_page):
    # Until the server understands images it answers with an error (400 "not supported yet", or
    # 500 while no vision model is installed): the page shows it and keeps the question.
    page, _ = open_page(allow=[HTTP_ERROR_LINE + r" [45]\d\d"])
    page.set_input_files("#image-file", file_payload("pose.png", "image/png", picture(1600, 900)))
    attached_url(page)
    page.locator("#composer-input").fill("Is my tree pose right?")
    chat = "**/v1/chat/completions"
    with page.expect_response(chat) as answered, page.expect_request(chat) as sent:
        page.keyboard.press("Enter")
    question = sent.value.post_data_json["messages"][-1]
    assert question["role"] == "user"
    text, image = question["content"]
    assert text == {"type": "text", "text": "Is my tree pose right?"}
    assert image["type"] == "image_url"
    url = image["image_url"]["url"]
    assert url.startswith("data:image/jpeg;base64,")
    assert max(decoded(url).size) <= 1024
    expect(page.locator("#attachments")).to_be_hidden()  # sent: the composer is empty again

    if answered.value.ok:  # the server understands images: the answer comes as usual
        expect(page.locator("#send")).to_be_visible(timeout=60_000)
        expect(page.locator(".message.streaming")).to_have_count(0)
    else:
        message = answered.value.json()["error"]["message"]
        error = page.locator(".message.error")
        expect(error).to_contain_text(message)
        expect(page.locator(".message.user .bubble")).to_have_text("Is my tree pose right?")
        bubble_image = page.locator(".message.user .message-images .thumb img")
        expect(bubble_image).to_have_attribute("src", url)
        screenshot(page, "image-sent")
        page.set_viewport_size({"width": 390, "height": 844})  # a phone: nothing overflows
        no_overflow = """() => [document.documentElement, document.getElementById('messages'),
            document.getElementById('thread')].every((e) => e.scrollWidth <= e.clientWidth)"""
        assert page.evaluate(no_overflow)
        page.set_viewport_size({"width": 1280, "height": 800})

        # Retry asks again with the same image.
        with page.expect_response(chat), page.expect_request(chat) as again:
            error.get_by_role("button", name="Retry").click()
        assert again.value.post_data_json["messages"][-1] == question
        expect(page.locator(".message.error")).to_contain_text(message)

    # An image alone: no text part.
    page.set_input_files("#image-file", file_payload("only.png", "image/png", picture(300, 200)))
    attached_url(page)
    with page.expect_response(chat), page.expect_request(chat) as alone:
        page.locator("#send").click()
    parts = alone.value.post_data_json["messages"][-1]["content"]
    assert [part["type"] for part in parts] == ["image_url"]


def load_entries_by_id() -> dict:
    return {entry["id"]: entry for entry in load_entries()}


def test_a_picture_of_an_exercise_gets_its_name_steps_and_source(open_page):
    """The issue's "done when": attach a held-out picture, ask what it is and how to do it."""
    page, _ = open_page(settings={"maxTokens": 400})
    pose = io.BytesIO()
    render_exercise("warrior-ii", TEST_SEEDS[7]).save(pose, "PNG")
    page.set_input_files("#image-file", file_payload("pose.png", "image/png", pose.getvalue()))
    attached_url(page)
    page.locator("#composer-input").fill("What is this exercise and how do I do it?")
    page.keyboard.press("Enter")
    answer = page.locator(".message.assistant").last
    expect(answer.locator(".markdown")).to_contain_text("This is Warrior II", timeout=60_000)
    first_step = load_entries_by_id()["warrior-ii"]["steps"]["en"][0]
    expect(answer.locator(".markdown")).to_contain_text(first_step)
    expect(answer.locator(".sources")).to_contain_text(
        "Warrior II (Virabhadrasana II) — How to do it"
    )
    screenshot(page, "picture-answered")


def test_stored_images_are_fetched_with_the_key_and_revoked_on_leaving(open_page, http):
    stored = picture(640, 480)
    upload = http.post("/v1/files", files={"file": ("mat.png", stored, "image/png")},
                       data={"purpose": "vision"})  # fmt: skip
    assert upload.status_code == 200, upload.text
    file_id = upload.json()["id"]
    cid = http.post("/conversations", json={}).json()["id"]
    body = {
        "model": CHAT,
        "conversation_id": cid,
        "messages": [
            {"role": "user", "content": "Here is my mat."},
            {"role": "assistant", "content": "A fine mat."},
            {"role": "user", "content": "Thanks."},
        ],
        "max_tokens": 2,
        "temperature": 0,
    }
    assert http.post("/v1/chat/completions", json=body).status_code == 200

    page, _ = open_page()

    # Until the server lists "images" itself, add them to what it answers.
    def with_images(route):
        response = route.fetch()
        listed = response.json()
        listed["data"][0]["images"] = [file_id]
        route.fulfill(response=response, json=listed)

    page.route("**/conversations/*/messages", with_images)
    with page.expect_request(f"**/v1/files/{file_id}/content") as fetched:
        page.locator(f'li[data-id="{cid}"] .conversation-link').click()
    assert fetched.value.all_headers()["authorization"] == f"Bearer {API_KEY}"
    thumb = page.locator(".message.user .message-images .thumb").first
    image = thumb.locator("img")
    expect(image).to_have_attribute("src", re.compile(r"^blob:"))
    page.wait_for_function(
        "() => document.querySelector('.message.user .thumb img')?.naturalWidth === 640"
    )
    expect(page.locator(".message.user .thumb")).to_have_count(1)  # only the first message
    blob_url = image.get_attribute("src")

    thumb.click()
    expect(page.locator("#image-viewer img")).to_have_attribute("src", blob_url)
    screenshot(page, "image-viewer")
    page.get_by_role("button", name="Close image").click()
    expect(page.locator("#image-viewer")).to_be_hidden()
    expect(thumb).to_be_focused()

    page.evaluate(
        """() => {
            window.revoked = [];
            const revoke = URL.revokeObjectURL.bind(URL);
            URL.revokeObjectURL = (url) => { window.revoked.push(url); revoke(url); };
        }"""
    )
    page.locator("#new-chat").click()
    expect(page.locator("#empty-state")).to_be_visible()
    assert blob_url in page.evaluate("window.revoked")
