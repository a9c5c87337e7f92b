"""Voice on the chat page, in Debian's Chromium with a fake microphone that plays a WAV made
by espeak-ng: record, cancel, upload a file, and hear replies while they are written.

Every test fails on a console error, an uncaught exception, a dialog or a request leaving
the server (tests.browser.PageWatch).
"""

import json

import httpx
import numpy as np
import pytest
from playwright.sync_api import expect, sync_playwright

from tests.audio_samples import SENTENCES, espeak, wav_seconds, wer, write_wav
from tests.browser import launch, page_opener, screenshot
from tests.server_process import ServerProcess

pytestmark = pytest.mark.slow

SPOKEN = SENTENCES[0]  # what the fake microphone says
HTTP_ERROR_LINE = r"Failed to load resource: the server responded with a status of"


@pytest.fixture(scope="module")
def microphone_wav(tmp_path_factory):
    """0.3 s of silence, the sentence, then 2 s of silence: Chromium plays it in a loop."""
    return espeak(tmp_path_factory.mktemp("mic") / "mic.wav", SPOKEN, pad=2.0)


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    data_dir = tmp_path_factory.mktemp("voice-page")
    with ServerProcess(data_dir / "server.log", data_dir=data_dir) as process:
        yield process


@pytest.fixture(scope="module")
def browser(microphone_wav):
    fake_microphone = [
        "--use-fake-ui-for-media-stream",  # allow the microphone without asking
        "--use-fake-device-for-media-stream",
        f"--use-file-for-fake-audio-capture={microphone_wav}",
    ]
    with sync_playwright() as playwright:
        chromium = launch(playwright, fake_microphone)
        yield chromium
        chromium.close()


@pytest.fixture
def open_page(browser, server, request):
    """open_page(settings=…, allow=…) → the page (tests.browser.page_opener)."""
    quick = {"maxTokens": 12, "temperature": 0}
    with page_opener(browser, server, request.node.name, quick) as opener:
        yield lambda **options: opener(**options)[0]


def stored_messages(server, page) -> list[dict]:
    cid = page.evaluate("decodeURIComponent(location.hash.slice(1))")
    return httpx.get(f"{server.url}/conversations/{cid}/messages").json()["data"]


def wait_answer_done(page) -> None:
    expect(page.locator("#send")).to_be_visible(timeout=60_000)
    expect(page.locator(".message.streaming")).to_have_count(0)
    expect(page.get_by_role("button", name="Regenerate answer")).to_be_visible()


def test_a_recorded_question_is_transcribed_and_answered(open_page, server, microphone_wav):
    page = open_page()
    microphone = page.get_by_role("button", name="Record a voice message")
    microphone.focus()
    page.keyboard.press("Enter")  # keyboard users can record too
    send = page.get_by_role("button", name="Stop recording and send")
    expect(send).to_be_focused()
    expect(page.locator("#composer-input")).to_be_hidden()
    expect(page.locator("#recorder-status")).to_have_text("Recording")
    # The level meter moves with the voice.
    page.wait_for_function(
        "() => Number((document.getElementById('level-bar').style.transform"
        ".match(/scaleX\\(([\\d.]+)/) || [])[1]) > 0.05"
    )
    screenshot(page, "voice-recording")
    page.wait_for_timeout(int((wav_seconds(microphone_wav) - 1.5) * 1000))  # the whole sentence
    with page.expect_response("**/v1/audio/transcriptions") as transcribed:
        page.keyboard.press("Enter")
    assert transcribed.value.status == 200
    bubble = page.locator(".message.user .bubble")
    expect(bubble).to_be_visible()
    assert wer(SPOKEN, bubble.inner_text()) <= 0.25, bubble.inner_text()
    wait_answer_done(page)
    stored = stored_messages(server, page)
    assert [m["role"] for m in stored] == ["user", "assistant"]
    assert stored[0]["content"] == bubble.inner_text()  # the transcript is the question
    assert stored[1]["content"].strip()
    expect(page.locator("#composer-input")).to_be_visible()


def test_cancel_throws_the_recording_away(open_page):
    page = open_page()
    transcriptions = []
    page.on("request", lambda r: transcriptions.append(r) if "transcriptions" in r.url else None)
    page.get_by_role("button", name="Record a voice message").click()
    expect(page.get_by_role("button", name="Stop recording and send")).to_be_visible()
    page.wait_for_timeout(500)
    page.keyboard.press("Escape")
    expect(page.locator("#recorder")).to_be_hidden()
    expect(page.locator("#composer-input")).to_be_focused()
    page.get_by_role("button", name="Record a voice message").click()
    page.get_by_role("button", name="Cancel").click()
    expect(page.locator("#recorder")).to_be_hidden()
    page.wait_for_timeout(300)
    assert transcriptions == [] and page.locator(".message").count() == 0


def test_an_uploaded_audio_file_is_transcribed_and_answered(open_page, server, tmp_path):
    page = open_page()
    question = espeak(tmp_path / "question.wav", SENTENCES[4])
    page.locator("#audio-file").set_input_files(question)
    bubble = page.locator(".message.user .bubble")
    expect(bubble).to_be_visible(timeout=30_000)
    assert wer(SENTENCES[4], bubble.inner_text()) <= 0.25, bubble.inner_text()
    wait_answer_done(page)
    assert stored_messages(server, page)[0]["content"] == bubble.inner_text()


def test_a_silent_file_says_no_speech_was_heard(open_page, tmp_path):
    page = open_page(allow=[HTTP_ERROR_LINE + " 400"])
    silent = write_wav(tmp_path / "silent.wav", np.zeros(22_050, "<i2"), 22_050)
    page.locator("#audio-file").set_input_files(silent)
    expect(page.locator("#notice")).to_contain_text("No speech was heard")
    expect(page.locator(".message")).to_have_count(0)
    expect(page.locator("#composer-input")).to_be_visible()


def test_speak_replies_reads_the_answer_while_it_is_written(open_page):
    page = open_page(settings={"maxTokens": 160, "temperature": 0})
    toggle = page.get_by_role("button", name="Speak replies")
    expect(toggle).to_have_attribute("aria-pressed", "false")
    toggle.click()
    expect(toggle).to_have_attribute("aria-pressed", "true")
    stored = json.loads(page.evaluate("localStorage.getItem('omnicoach.settings')"))
    assert stored["speakReplies"] is True

    def long_answer(route):  # ignore_eos: the answer runs to max_tokens, well past a sentence
        body = {**json.loads(route.request.post_data), "ignore_eos": True}
        route.continue_(post_data=json.dumps(body))

    page.route("**/v1/chat/completions", long_answer)
    events = []
    page.on(
        "response",
        lambda r: events.append(("speech", r.status)) if "/v1/audio/speech" in r.url else None,
    )
    page.on(
        "requestfinished",
        lambda r: events.append(("answer done",)) if "/v1/chat/completions" in r.url else None,
    )
    # An open question, which the chat model answers (one about an exercise is the entry's).
    page.locator("#composer-input").fill("Give me tips for a better morning routine.")
    page.keyboard.press("Enter")
    expect(page.locator("#speak-replies.speaking")).to_be_visible(timeout=30_000)  # playing
    wait_answer_done(page)
    assert ("answer done",) in events
    finished = events.index(("answer done",))
    assert ("speech", 200) in events[:finished], events  # heard before the reply completed
    assert all(event == ("speech", 200) for event in events if event[0] == "speech")

    page.reload()  # the toggle is a setting: it stays on
    expect(page.get_by_role("button", name="Speak replies")).to_have_attribute(
        "aria-pressed", "true"
    )


def test_replies_are_not_spoken_when_the_toggle_is_off(open_page):
    page = open_page()
    speech = []
    page.on("request", lambda r: speech.append(r) if "/v1/audio/speech" in r.url else None)
    page.locator("#composer-input").fill("Name a hip opener.")
    page.keyboard.press("Enter")
    wait_answer_done(page)
    page.wait_for_timeout(300)
    assert speech == []
