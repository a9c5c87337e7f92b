"""The Jobs view of the chat page, in Debian's Chromium against a real server (which requires
a key) and a real `omnicoach worker`: the sidebar entry and its addresses (#jobs,
#jobs/<id>), the training form (every problem of a bad ZIP listed under it), a LoRA trained
from a ZIP followed live (status, loss curve, sample pictures fetched with the key), the list,
a reload, Cancel, and a phone's width.

The server draws with the tiny random Stable Diffusion pipeline of tests/test_server_drawing.py,
so training is quick and its pictures are noise: what is tested is the page.
Every test fails on a console error, an uncaught exception, a dialog or a request leaving the
server (tests.browser.PageWatch). Screenshots land in test-artifacts/page/.
"""

import io
import re
import time

import httpx
import pytest
from PIL import Image, ImageDraw
from playwright.sync_api import Page, expect, sync_playwright

from tests.browser import launch, page_opener, screenshot
from tests.server_process import ServerProcess, worker_process
from tests.test_server_drawing import tiny_pipeline, zipped

pytestmark = pytest.mark.slow

API_KEY = "jobs-page-key"
HTTP_ERROR_LINE = r"Failed to load resource: the server responded with a status of"
TRAINED = 300_000  # ms: a training on this busy machine may wait for the worker to start
NO_OVERFLOW = """() => [document.documentElement, document.getElementById('jobs-view'),
    ...document.querySelectorAll('.jobs-card, .job-detail')]
    .every((e) => e.scrollWidth <= e.clientWidth)"""


def square(colour: str) -> bytes:
    """A small picture: a coloured square with a dark disc, as a PNG."""
    image = Image.new("RGB", (32, 32), colour)
    ImageDraw.Draw(image).ellipse([8, 8, 24, 24], fill=(20, 20, 20))
    out = io.BytesIO()
    image.save(out, "PNG")
    return out.getvalue()


GOOD_ZIP = zipped(
    {f"{n}.png": square(c) for n, c in enumerate(["red", "orange", "gold", "teal", "navy", "plum"])}
)


@pytest.fixture(scope="module")
def settings(tmp_path_factory):
    model = tiny_pipeline(tmp_path_factory.mktemp("tiny-sd"))
    return {
        "data_dir": tmp_path_factory.mktemp("jobs-page"),
        "image_model": model,
        "image_steps": 2,
        "api_keys": API_KEY,
    }


@pytest.fixture(scope="module")
def server(settings):
    with ServerProcess(settings["data_dir"] / "server.log", **settings) as process:
        yield process


@pytest.fixture(scope="module")
def worker(server, settings):
    """A real `omnicoach worker` for the LoRA jobs; started once the server has migrated."""
    with worker_process(settings["data_dir"] / "worker.log", **settings) as process:
        yield process


@pytest.fixture(scope="module")
def browser():
    with sync_playwright() as playwright:
        chromium = launch(playwright)
        yield chromium
        chromium.close()


@pytest.fixture
def open_page(browser, server, request):
    """open_page(allow=…, …) → (page, watch): the chat page, with the API key in its storage."""
    key = {"cookies": [], "origins": [
        {"origin": server.url, "localStorage": [{"name": "omnicoach.apiKey", "value": API_KEY}]}
    ]}  # fmt: skip
    with page_opener(browser, server, request.node.name, {}) as opener:
        yield lambda **options: opener(storage_state=key, **options)


@pytest.fixture(scope="module")
def http(server):
    headers = {"Authorization": f"Bearer {API_KEY}"}
    with httpx.Client(base_url=server.url, headers=headers, timeout=60) as client:
        yield client


def wait_for_job(http: httpx.Client, job_id: str, timeout: float = 300) -> dict:
    deadline = time.monotonic() + timeout
    while (job := http.get(f"/jobs/{job_id}").json())["status"] in ("queued", "running"):
        assert time.monotonic() < deadline, job
        time.sleep(1)
    return job


def open_jobs(page: Page) -> None:
    """Open the Jobs view from the sidebar, as a user does."""
    page.get_by_role("link", name="Jobs").click()
    expect(page.locator("#jobs-view")).to_be_visible()
    expect(page.locator("#composer")).to_be_hidden()
    expect(page.locator("#chat-title")).to_have_text("Jobs")
    assert page.url.endswith("#jobs")


def start_training(page: Page, content: bytes, trigger: str = "zqxstyle", steps: str = "") -> None:
    page.set_input_files(
        "#train-file", {"name": "pictures.zip", "mimeType": "application/zip", "buffer": content}
    )
    page.get_by_label("Trigger word").fill(trigger)
    if steps:
        page.get_by_label("Steps").fill(steps)
    page.get_by_role("button", name="Start training").click()


def test_a_bad_zip_lists_every_problem_under_the_form(open_page, http):
    page, _ = open_page(allow=[HTTP_ERROR_LINE + " 400"])
    open_jobs(page)
    form = page.locator("#train-form")
    expect(page.get_by_label("ZIP of pictures")).to_have_attribute("accept", re.compile(r"\.zip"))
    expect(page.get_by_label("Steps")).to_have_value("300")
    problems = page.locator("#train-problems")

    # Checked here first: no ZIP chosen, a trigger of two words.
    page.get_by_label("Trigger word").fill("two words")
    page.get_by_role("button", name="Start training").click()
    expect(problems).to_be_visible()
    expect(problems).to_have_attribute("role", "alert")
    expect(problems.locator("li")).to_have_text(
        ["Choose a ZIP of pictures.", re.compile("The trigger word must be one word")]
    )
    expect(page.get_by_label("ZIP of pictures")).to_be_focused()

    # A ZIP dropped on the view is chosen for the form (not attached to the hidden chat).
    transfer = page.evaluate_handle(
        """() => {
            const transfer = new DataTransfer();
            transfer.items.add(new File(["PK"], "dropped.zip", {type: "application/zip"}));
            return transfer;
        }"""
    )
    for event in ("dragenter", "dragover", "drop"):
        page.dispatch_event("#jobs-view", event, {"dataTransfer": transfer})
    expect(page.locator("#drop-zone")).to_be_hidden()
    assert page.evaluate("document.getElementById('train-file').files[0].name") == "dropped.zip"
    expect(problems).to_be_hidden()

    # The server's check: every problem it found is listed, each on its own line.
    notes = zipped({"notes.txt": b"plank 3x30s"})
    files = {"file": ("pictures.zip", notes, "application/zip")}
    expected = http.post("/train", files=files, data={"trigger": "zqxstyle"}).json()["error"]
    assert len(expected["problems"]) >= 2, expected  # a caption without its image, no images
    with page.expect_response("**/train") as answered:
        start_training(page, notes)
    assert answered.value.status == 400
    expect(problems.locator("li")).to_have_text(expected["problems"])
    expect(problems.locator("li", has_text="the ZIP holds no images")).to_have_count(1)
    expect(problems.locator("p")).to_contain_text(f"({len(expected['problems'])} problems)")
    expect(page.get_by_label("ZIP of pictures")).to_have_attribute("aria-invalid", "true")
    expect(page.get_by_label("Trigger word")).not_to_have_attribute("aria-invalid", "true")
    screenshot(page, "jobs-bad-zip")
    expect(form).to_be_visible()
    assert page.url.endswith("#jobs")  # no job was made

    # Back returns to the chat, as it was.
    page.go_back()
    expect(page.locator("#composer-input")).to_be_visible()
    expect(page.locator("#jobs-view")).to_be_hidden()
    expect(page.locator("#chat-title")).to_have_text("New chat")


def test_a_good_zip_trains_a_lora_followed_live(open_page, worker):
    page, _ = open_page()
    open_jobs(page)
    events = re.compile(r"/jobs/[^/]+/events$")
    with page.expect_request(events) as followed, page.expect_response("**/train") as answered:
        start_training(page, GOOD_ZIP, steps="20")
    assert answered.value.status == 201
    job = answered.value.json()
    assert followed.value.all_headers()["authorization"] == f"Bearer {API_KEY}"
    assert page.url.endswith(f"#jobs/{job['id']}")
    expect(page.locator("#train-problems")).to_be_hidden()
    expect(page.get_by_label("Steps")).to_have_value("300")  # the form is ready for the next

    detail = page.locator("#job-detail")
    expect(detail.locator("h2")).to_have_text("train_image_lora")
    expect(detail.locator("h2")).to_be_focused()
    expect(detail.locator(".job-params")).to_contain_text("zqxstyle")
    expect(detail.locator(".job-params")).to_contain_text("6 pictures (images_only)")
    badge = detail.locator(".job-title .job-badge")
    expect(badge).to_have_attribute("data-status", re.compile("queued|running|succeeded"))
    page.wait_for_function(  # live: the curve grows while the job runs
        "() => document.querySelector('#job-detail [data-metric=loss] polyline')",
        timeout=TRAINED,
    )
    screenshot(page, "jobs-training")

    expect(badge).to_have_attribute("data-status", "succeeded", timeout=TRAINED)
    expect(badge).to_have_text("Succeeded")
    expect(detail.get_by_role("button", name="Cancel job")).to_be_hidden()
    expect(detail.get_by_role("progressbar")).to_have_attribute("aria-valuenow", "100")
    loss = detail.locator("[data-metric=loss]")
    points = loss.locator("polyline").get_attribute("points").split()
    assert len(points) == 20  # one per step, none twice (read, then streamed)
    expect(loss.locator("svg")).to_have_attribute("aria-label", re.compile(r"steps 1 to 20"))
    expect(loss.locator(".chart-label")).to_have_count(4)  # min and max of each axis

    # The sample pictures, fetched with the key and shown; the other files are downloads.
    samples = detail.locator(".artifact-image img")
    expect(samples.first).to_have_attribute("src", re.compile(r"^blob:"))
    page.wait_for_function(
        "() => document.querySelector('#job-detail .artifact-image img')?.naturalWidth > 0"
    )
    names = page.locator(".artifact-image figcaption").all_text_contents()
    assert "sample-000020.png" in names, names
    expect(detail.get_by_role("button", name="Download lora.json")).to_be_visible()
    with page.expect_download() as downloaded:
        detail.get_by_role("button", name="Download lora.json").click()
    assert downloaded.value.suggested_filename == "lora.json"
    expect(detail.locator(".job-log li").first).to_be_visible()
    screenshot(page, "jobs-succeeded")

    # The list shows it, marked as the open one.
    row = page.locator(f'.job-row[data-id="{job["id"]}"]')
    expect(row).to_have_attribute("aria-current", "page")
    expect(row.locator(".job-badge")).to_have_text("Succeeded")


def test_the_list_a_reload_and_a_phone_show_the_same_job(open_page, http, worker):
    files = {"file": ("squares.zip", GOOD_ZIP, "application/zip")}
    created = http.post("/train", files=files, data={"trigger": "zqxdots", "steps": "4"})
    assert created.status_code == 201, created.text
    job = wait_for_job(http, created.json()["id"])
    assert job["status"] == "succeeded", job

    page, _ = open_page()
    open_jobs(page)
    row = page.locator(f'.job-row[data-id="{job["id"]}"]')
    expect(row).to_contain_text("train_image_lora")
    expect(row.locator(".job-badge")).to_have_text("Succeeded")
    expect(row.get_by_role("progressbar")).to_have_attribute("aria-valuenow", "100")
    expect(row.locator("time")).to_be_visible()
    row.click()
    assert page.url.endswith(f"#jobs/{job['id']}")
    detail = page.locator("#job-detail")
    expect(detail.locator(".job-params")).to_contain_text("zqxdots")

    page.reload()
    expect(page.locator("#jobs-view")).to_be_visible()
    expect(detail.locator(".job-params")).to_contain_text("zqxdots")
    expect(detail.locator(".job-title .job-badge")).to_have_text("Succeeded")
    expect(detail.locator("[data-metric=loss] polyline")).to_have_count(1)
    expect(detail.locator(".artifact-image img").first).to_have_attribute(
        "src", re.compile(r"^blob:")
    )
    expect(row).to_have_attribute("aria-current", "page")

    page.set_viewport_size({"width": 390, "height": 844})  # a phone: nothing overflows
    expect(page.locator("#sidebar")).to_be_hidden()
    assert page.evaluate(NO_OVERFLOW)
    screenshot(page, "jobs-phone")
    page.emulate_media(color_scheme="dark")
    screenshot(page, "jobs-phone-dark")

    # "All jobs" leaves the job; Back opens it again.
    detail.get_by_role("link", name="All jobs").click()
    expect(detail).to_be_hidden()
    assert page.url.endswith("#jobs")
    page.go_back()
    expect(detail.locator(".job-params")).to_contain_text("zqxdots")


def test_cancel_stops_a_job(open_page, http, worker):
    files = {"file": ("squares.zip", GOOD_ZIP, "application/zip")}
    created = http.post("/train", files=files, data={"trigger": "zqxlong", "steps": "5000"})
    assert created.status_code == 201, created.text
    job_id = created.json()["id"]
    page, _ = open_page()
    page.goto(f"{page.url.split('#')[0]}#jobs/{job_id}")
    detail = page.locator("#job-detail")
    cancel = detail.get_by_role("button", name="Cancel job")
    expect(cancel).to_be_visible()
    cancel.click()
    badge = detail.locator(".job-title .job-badge")
    expect(badge).to_have_attribute("data-status", "cancelled", timeout=60_000)
    expect(cancel).to_be_hidden()
    assert wait_for_job(http, job_id, timeout=60)["status"] == "cancelled"
