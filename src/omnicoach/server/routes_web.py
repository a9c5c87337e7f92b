"""The chat page: index.html at ``/`` and its files under ``/static``.

The page needs no key to load: only its API calls carry one (kept in the browser). Every
response here carries a strict Content-Security-Policy: scripts only from this server and
never inline, no requests anywhere else, so even an answer that slipped past the sanitiser
could neither run a script nor send data away.
"""

from pathlib import Path

from fastapi import FastAPI
from fastapi.responses import FileResponse
from fastapi.staticfiles import StaticFiles
from starlette.types import Scope

WEB_DIR = Path(__file__).resolve().parents[1] / "web"

CONTENT_SECURITY_POLICY = "; ".join(
    [
        "default-src 'none'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' data: blob:",  # blob: for the image previews a later issue adds
        "connect-src 'self'",
        "base-uri 'none'",
        "form-action 'none'",
        "frame-ancestors 'none'",
    ]
)
HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    # Revalidate every time (cheap: ETag → 304), so an upgraded server never runs old scripts.
    "Cache-Control": "no-cache",
}


class _WebFiles(StaticFiles):
    async def get_response(self, path: str, scope: Scope):
        response = await super().get_response(path, scope)
        response.headers.update(HEADERS)
        return response


def mount_web(app: FastAPI) -> None:
    """Serve the chat page at / and its assets at /static (no authentication)."""

    @app.api_route("/", methods=["GET", "HEAD"], include_in_schema=False)
    def index() -> FileResponse:
        return FileResponse(WEB_DIR / "index.html", headers=HEADERS)

    app.mount("/static", _WebFiles(directory=WEB_DIR), name="static")
