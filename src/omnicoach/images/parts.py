"""Images in chat messages: OpenAI content parts turned into decoded RGB pictures.

A part is ``{"type": "image_url", "image_url": {"url": ..., "detail": "auto"}}`` where the
URL is one of:
- a data URL, ``data:image/png;base64,<data>`` (the media type may be missing or wrong: the
  content decides, as for any upload);
- the id of a file the same user uploaded to /v1/files (``file-<hex>``);
and ``{"type": "image_file", "image_file": {"file_id": "file-<hex>"}}`` (OpenAI's
Assistants form) names an uploaded file too. ``image_url`` may also be the URL itself, as a
string, which some clients send. ``detail`` is accepted and ignored: the model's processor
chooses the resolution.

http(s) URLs are refused, not fetched: fetching would let any user make the server request
addresses of its choice (internal ones included), and hold a worker while a slow host
answers.
"""

import base64
import binascii
import re
from collections.abc import Mapping

from PIL import Image

from omnicoach.errors import NotFoundError
from omnicoach.images.decode import MAX_BYTES, MAX_PIXELS, ImageInputError, load_image

# What new_id("file-") makes (file- and 32 hex digits), with room for OpenAI-style ids. The
# id is only ever a database key (the bytes are found by their hash), but checking its form
# first keeps path-like or huge strings away from the database and out of messages.
FILE_ID = re.compile(r"file-[A-Za-z0-9_-]{1,59}")
HOW_TO_SEND = "send the image as a data URL (data:image/png;base64,...) or upload it to /v1/files"


def image_from_part(
    part: Mapping | object,
    *,
    where: str,
    user: str | None,
    db=None,
    files=None,
    max_pixels: int = MAX_PIXELS,
    max_bytes: int = MAX_BYTES,
) -> Image.Image:
    """The RGB image an image_url (or image_file) content PART carries.

    WHERE locates the part in the request (``messages[0].content[1]``); errors name it in
    their message and in their ``param``. PART may be a dict or a pydantic model whose extra
    fields hold ``image_url``. A file id is resolved with FILES (a FileStore) and DB for
    USER: a missing id, or another user's, raises NotFoundError (code "file_not_found").
    Everything else that is wrong raises ImageInputError: code "invalid_image_url" for a
    malformed part or URL, "unsupported_image_url" for an http(s) URL, "invalid_image" for
    bytes that are not a usable image (see load_image).
    """
    if _field(part, "type") == "image_file":
        param = f"{where}.image_file.file_id"
        image_file = _as_dict(_field(part, "image_file"))
        file_id = image_file.get("file_id") if image_file is not None else None
        if not isinstance(file_id, str):
            raise ImageInputError(
                f'{where}.image_file: an image_file part needs "image_file": {{"file_id": '
                '"file-..."}',
                "invalid_image_url",
                f"{where}.image_file",
            )
        data = _file_bytes(file_id, param, user, db, files, max_bytes)
    else:
        param = f"{where}.image_url.url"
        data = _url_bytes(_url(part, where), param, user, db, files, max_bytes)
    try:
        return load_image(data, max_pixels=max_pixels, max_bytes=max_bytes, param=param)
    except ImageInputError as exc:
        raise ImageInputError(f"{param}: {exc}", exc.code, param) from None


def _url(part: Mapping | object, where: str) -> str:
    image_url = _field(part, "image_url")
    if isinstance(image_url, str):  # {"image_url": "data:..."}: older clients send this
        url = image_url
    else:
        image_url = _as_dict(image_url)
        url = image_url.get("url") if image_url is not None else None
    if not isinstance(url, str) or not url.strip():
        raise ImageInputError(
            f'{where}.image_url: an image_url part needs "image_url": {{"url": '
            '"data:image/png;base64,..."}',
            "invalid_image_url",
            f"{where}.image_url",
        )
    return url.strip()


def _url_bytes(url: str, param: str, user, db, files, max_bytes: int) -> bytes:
    scheme = url.split(":", 1)[0].lower() if ":" in url else ""
    if scheme == "data":
        return _data_url_bytes(url, param)
    if url.startswith("file-"):
        return _file_bytes(url, param, user, db, files, max_bytes)
    if scheme in ("http", "https"):
        raise ImageInputError(
            f"{param}: images are not fetched from http(s) URLs; {HOW_TO_SEND}",
            "unsupported_image_url",
            param,
        )
    raise ImageInputError(
        f"{param}: the image URL is neither a data URL nor an uploaded file's id; {HOW_TO_SEND}",
        "invalid_image_url",
        param,
    )


def _data_url_bytes(url: str, param: str) -> bytes:
    """The bytes of ``data:[<media type>][;<parameter>]*;base64,<data>``. The media type is
    not checked: the content decides what the image is."""
    header, comma, payload = url[len("data:") :].partition(",")
    if not comma:
        raise ImageInputError(
            f"{param}: the data URL has no comma before its data; send "
            "data:image/png;base64,<base64 data>",
            "invalid_image_url",
            param,
        )
    if header.split(";")[-1].strip().lower() != "base64":
        raise ImageInputError(
            f"{param}: the data URL is not base64-encoded; send data:image/png;base64,<base64 "
            "data>",
            "invalid_image_url",
            param,
        )
    # Some encoders wrap base64 at 76 characters or drop the padding; neither changes the
    # bytes, so neither is refused.
    payload = "".join(payload.split())
    payload += "=" * (-len(payload) % 4)
    try:
        return base64.b64decode(payload, validate=True)
    except (binascii.Error, ValueError):
        raise ImageInputError(
            f"{param}: the data URL's data is not valid base64; send the image file's bytes "
            "base64-encoded",
            "invalid_image_url",
            param,
        ) from None


def _file_bytes(file_id: str, param: str, user, db, files, max_bytes: int) -> bytes:
    if files is None or db is None:  # a caller with no file store (none here yet)
        raise ImageInputError(
            f"{param}: uploaded file ids cannot be used here; send the image as a data URL "
            "(data:image/png;base64,...)",
            "invalid_image_url",
            param,
        )
    if not FILE_ID.fullmatch(file_id) or user is None:
        # Reported exactly as an unknown id: the same answer whatever was sent.
        raise _not_found(file_id[:80], param)
    try:
        stored = files.get(db, user, file_id)  # another user's file is "not found" too
    except NotFoundError as exc:
        exc.param = param
        raise
    if stored.bytes > max_bytes:  # known from the row: no need to read it
        raise ImageInputError(
            f"{param}: the file {file_id} is {stored.bytes:,} bytes, over the image limit of "
            f"{max_bytes:,} bytes; send a smaller image",
            "invalid_image",
            param,
        )
    try:
        return files.path(stored).read_bytes()
    except FileNotFoundError:  # deleted between the lookup and the read
        raise _not_found(file_id, param) from None


def _not_found(file_id: str, param: str) -> NotFoundError:
    error = NotFoundError("file", file_id)
    error.param = param  # as on ImageInputError, for the API layer
    return error


def _field(part: Mapping | object, name: str):
    """A field of a dict part, or of a pydantic part (whose extra fields are attributes)."""
    if isinstance(part, Mapping):
        return part.get(name)
    return getattr(part, name, None)


def _as_dict(value) -> Mapping | None:
    if isinstance(value, Mapping):
        return value
    if hasattr(value, "model_dump"):  # a nested pydantic model, should a schema declare one
        return value.model_dump()
    return None
