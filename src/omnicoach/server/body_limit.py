"""Reject request bodies over the size limit with 413 before they are read into memory.

A pure ASGI middleware: it checks Content-Length up front, and counts the bytes of bodies sent
without one (chunked) as the app reads them, raising BodyTooLarge, which the app's HTTP error
handler answers with the same OpenAI-shaped 413.
"""

from starlette.exceptions import HTTPException as StarletteHTTPException

from omnicoach.server.errors import APIError, error_response


class BodySizeLimit:
    def __init__(self, app, max_bytes: int):
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_bytes:
            return await self._reject(scope, receive, send)

        received = 0

        async def limited_receive():
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    raise BodyTooLarge(self.max_bytes)
            return message

        await self.app(scope, limited_receive, send)

    async def _reject(self, scope, receive, send):
        # Outside the app, so no exception handler runs here: answer directly.
        error = APIError(413, too_large_message(self.max_bytes), code="request_too_large")
        await error_response(error)(scope, receive, send)


class BodyTooLarge(StarletteHTTPException):
    # An HTTPException, because FastAPI turns any other error raised while it reads the body
    # into a generic 400; this one passes through to the OpenAI-shaped error handler.
    def __init__(self, max_bytes: int):
        super().__init__(413, too_large_message(max_bytes))


def too_large_message(max_bytes: int) -> str:
    return f"the request body is larger than the limit of {max_bytes} bytes"
