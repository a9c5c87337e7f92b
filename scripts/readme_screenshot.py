"""The README's screenshot (docs/screenshot.png): a real server on a fresh data dir, Debian's
Chromium through Playwright, a question asked in the page, its answer as it came.

    .venv/bin/python scripts/readme_screenshot.py [--question "…"] [--out docs/screenshot.png]
"""

import argparse
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
from playwright.sync_api import sync_playwright

REPO = Path(__file__).resolve().parents[1]
EARLIER = ["How often should I train core?", "Stretches for a stiff lower back"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def serve(data_dir: Path, port: int) -> subprocess.Popen:
    env = {k: v for k, v in os.environ.items() if not k.startswith("OMNICOACH_")}
    env |= {"OMNICOACH_DATA_DIR": str(data_dir), "OMNICOACH_MODEL_CACHE": str(REPO / "var/models")}
    server = subprocess.Popen(
        [sys.executable, "-m", "omnicoach.cli", "serve", "--port", str(port)],
        env=env,
        cwd=REPO,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/health", timeout=2).status_code == 200:
                return server
        except httpx.TransportError:
            time.sleep(0.5)
    server.kill()
    raise TimeoutError("the server did not start")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--question", default="How do I do downward dog safely?")
    parser.add_argument("--out", type=Path, default=REPO / "docs" / "screenshot.png")
    args = parser.parse_args()
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    with tempfile.TemporaryDirectory() as data_dir:
        server = serve(Path(data_dir), port)
        try:
            for title in EARLIER:  # a sidebar with a few chats, as a user's would have
                httpx.post(f"{url}/conversations", json={"title": title}).raise_for_status()
            with sync_playwright() as playwright:
                browser = playwright.chromium.launch(
                    executable_path=shutil.which("chromium") or "/usr/bin/chromium",
                    args=["--no-sandbox", "--disable-gpu", "--disable-background-networking"],
                )
                page = browser.new_page(viewport={"width": 1280, "height": 800})
                page.goto(url)
                page.locator("#composer-input").fill(args.question)
                page.keyboard.press("Enter")
                page.locator(".message.assistant .markdown").last.wait_for()
                page.wait_for_function(  # the answer has ended: nothing streams any more
                    "() => !document.querySelector('.message.streaming')", timeout=120_000
                )
                page.screenshot(path=args.out)
                browser.close()
        finally:
            server.terminate()
            server.wait(30)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
