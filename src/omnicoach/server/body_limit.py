"""Reject request bodies over the size limit with 413 before they are read into memory.

A pure ASGI middleware: it checks Content-Length up front and also counts the bytes of bodies
sent without one (chunked), so neither kind can exceed the limit.
"""

import json

from starlette.exceptions import HTTPException as StarletteHTTPException

from omnicoach.server.errors import error_body


class BodySizeLimit:
    def __init__(self, app, max_bytes: int):
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_bytes:
            return await self._reject(send)

        received = 0
        response_started = False

        async def limited_receive():
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    raise BodyTooLarge(self.max_bytes)
            return message

        async def tracking_send(message):
            nonlocal response_started
            response_started = response_started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, limited_receive, tracking_send)
        except BodyTooLarge:
            if not response_started:
                await self._reject(send)

    async def _reject(self, send):
        body = json.dumps(
            error_body(
                too_large_message(self.max_bytes),
                "invalid_request_error",
                code="request_too_large",
            )
        ).encode()
        await send(
            {
                "type": "http.response.start",
                "status": 413,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})


class BodyTooLarge(StarletteHTTPException):
    # An HTTPException, because FastAPI turns any other error raised while it reads the body
    # into a generic 400; this one passes through to the OpenAI-shaped error handler.
    def __init__(self, max_bytes: int):
        super().__init__(413, too_large_message(max_bytes))


def too_large_message(max_bytes: int) -> str:
    return f"the request body is larger than the limit of {max_bytes} bytes"
