"""Every error leaves the API in OpenAI's shape: {"error": {message, type, param, code}}."""

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from omnicoach.errors import (
    ConflictError,
    FileTooLargeError,
    InvalidRequestError,
    ModelFileError,
    NotFoundError,
    OmnicoachError,
    StorageFullError,
    UnknownModelError,
    UnsupportedFileTypeError,
)
from omnicoach.models.remote_llm import RemoteLLMError


class APIError(Exception):
    """An error raised by a route, already knowing its status and OpenAI fields."""

    def __init__(
        self,
        status: int,
        message: str,
        type: str = "invalid_request_error",
        param: str | None = None,
        code: str | None = None,
        headers: dict[str, str] | None = None,
        problems: list[str] | None = None,
    ):
        super().__init__(message)
        self.status, self.message, self.type = status, message, type
        self.param, self.code, self.headers = param, code, headers
        self.problems = problems  # extension: every problem, when there are several


class ServerBusy(APIError):
    def __init__(self, retry_after: int, what: str = "generations"):
        super().__init__(
            503,
            f"the server is busy: too many {what} are running or waiting; retry shortly",
            type="server_busy",
            code="server_busy",
            headers={"Retry-After": str(retry_after)},
        )


# The body above in the OpenAPI schema: every route declares it for its 4xx and 5xx answers
# (create_app), instead of FastAPI's {"detail": [...]} that this API never sends.
ERROR_SCHEMA = {
    "type": "object",
    "required": ["error"],
    "properties": {
        "error": {
            "type": "object",
            "required": ["message", "type", "param", "code"],
            "properties": {
                "message": {"type": "string"},
                "type": {"type": "string"},
                "param": {"type": ["string", "null"]},
                "code": {"type": ["string", "null"]},
                "problems": {"type": "array", "items": {"type": "string"}},
            },
        }
    },
}
ERROR_RESPONSES = {
    status: {"description": text, "content": {"application/json": {"schema": ERROR_SCHEMA}}}
    for status, text in [("4XX", "A request error"), ("5XX", "A server error")]
}


def error_body(message: str, type: str, param: str | None = None, code: str | None = None) -> dict:
    return {"error": {"message": message, "type": type, "param": param, "code": code}}


def error_response(error: APIError) -> JSONResponse:
    body = error_body(error.message, error.type, error.param, error.code)
    if error.problems:
        body["error"]["problems"] = error.problems
    return JSONResponse(
        body,
        status_code=error.status,
        headers=error.headers,
    )


def from_domain_error(exc: OmnicoachError, param: str | None = None) -> APIError:
    param = getattr(exc, "param", None) or param  # an error that names its place knows best
    if isinstance(exc, UnknownModelError):
        return APIError(404, str(exc), param=param or "model", code="model_not_found")
    if isinstance(exc, FileTooLargeError):
        return APIError(413, str(exc), param=param or "file", code="file_too_large")
    if isinstance(exc, UnsupportedFileTypeError):
        return APIError(415, str(exc), param=param or "file", code="unsupported_file_type")
    if isinstance(exc, StorageFullError):
        return APIError(507, str(exc), type="server_error", code="insufficient_storage")
    if isinstance(exc, NotFoundError):
        return APIError(404, str(exc), param=param, code=exc.code)
    if isinstance(exc, ConflictError):
        return APIError(409, str(exc), param=param, code=exc.code)
    if isinstance(exc, RemoteLLMError):  # chat delegated to llm_url: its status (remote_llm.py)
        return APIError(exc.status, str(exc), exc.type, code=exc.code, headers=exc.headers)
    if isinstance(exc, InvalidRequestError):  # some name their problem (e.g. "no_speech")
        return APIError(400, str(exc), param=param, code=getattr(exc, "code", None))
    if isinstance(exc, ModelFileError):
        return APIError(500, str(exc), type="server_error", code="model_unavailable")
    return APIError(400, str(exc), param=param)


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(APIError)
    async def _api_error(_: Request, exc: APIError):
        return error_response(exc)

    @app.exception_handler(OmnicoachError)
    async def _domain_error(_: Request, exc: OmnicoachError):
        return error_response(from_domain_error(exc))

    @app.exception_handler(RequestValidationError)
    async def _validation_error(_: Request, exc: RequestValidationError):
        first = exc.errors()[0]
        location = [str(p) for p in first["loc"] if p != "body"]
        param = ".".join(location) or None
        if first["type"] == "json_invalid":
            param = None
            message = f"the request body is not valid JSON: {first.get('ctx', {}).get('error', '')}"
        else:
            message = f"{param or 'body'}: {first['msg']}"
        return error_response(APIError(422, message, param=param, code=first["type"]))

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(_: Request, exc: StarletteHTTPException):
        code = {404: "not_found", 405: "method_not_allowed", 413: "request_too_large"}.get(
            exc.status_code
        )
        return error_response(APIError(exc.status_code, str(exc.detail), code=code))

    @app.exception_handler(Exception)
    async def _unexpected(_: Request, exc: Exception):
        # A bug: say so plainly, log the traceback server-side (uvicorn does).
        return error_response(
            APIError(500, f"internal error: {type(exc).__name__}", type="server_error")
        )
