"""Images a user sends, checked and decoded into what the vision models take: an RGB picture.

Only PNG, JPEG (MPO included), WebP, GIF, BMP and TIFF are read: Pillow knows dozens of
formats, and each one it parses is code an attacker can reach. The type comes from the
bytes, never from a name or a media type. The pixel count is checked from the header before
any pixel is decoded, so a small file that expands to gigabytes (a "decompression bomb")
costs nothing. Every way the bytes can be unusable becomes an ImageInputError with a
message a person can act on; Pillow's own exceptions never escape.

What the model gets:
- animated images (GIF, WebP, APNG) and multi-page ones (TIFF, MPO): the first frame only;
- the EXIF orientation applied, so a phone photo is upright;
- transparency composited over white (a transparent logo is dark on light, as a viewer
  shows it, not on black);
- 16-bit and 32-bit grayscale scaled to 8 bits, so mid-grey stays mid-grey;
- no metadata (EXIF, GPS position, ICC profile): colour profiles are not applied.
Nothing here is written to disk.
"""

import base64
import io
import re

import filetype
import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from omnicoach.errors import InvalidRequestError
from omnicoach.files import SNIFF_BYTES, is_text

MAX_PIXELS = 40_000_000  # a 40-megapixel photo; decoded as RGBA it takes 160 MB
MAX_BYTES = 20 * 2**20  # the default upload limit (Settings.max_upload_bytes)
# Pillow's plugin names. JPEG includes MPO: Pillow opens a JPEG with a multi-picture index
# (many phone photos) through its JPEG plugin.
FORMATS = ("PNG", "JPEG", "WEBP", "GIF", "BMP", "TIFF")
FORMAT_NAMES = "PNG, JPEG, WebP, GIF, BMP or TIFF"
# Modes that carry alpha. "transparency" in a palette or grayscale image's info is the other
# way an image can be transparent.
ALPHA_MODES = {"RGBA", "RGBa", "LA", "PA"}
# Grayscale deeper than 8 bits: Pillow's convert() clips these to 0..255, which turns a
# 16-bit mid-grey (32768) white, so they are scaled here instead.
DEEP_GRAY_MODES = {"I;16", "I;16L", "I;16B", "I;16N", "I", "F"}
WHITE = (255, 255, 255, 255)


class ImageInputError(InvalidRequestError):
    """An image that cannot be used; ``code`` names the problem for clients and ``param``
    where in the request the image was (None when unknown)."""

    def __init__(self, message: str, code: str = "invalid_image", param: str | None = None):
        super().__init__(message)
        self.code = code
        self.param = param


def load_image(
    data: bytes,
    *,
    max_pixels: int = MAX_PIXELS,
    max_bytes: int = MAX_BYTES,
    param: str | None = None,
) -> Image.Image:
    """DATA decoded into an RGB image, fully loaded and detached from DATA.

    Animated or multi-page images give their first frame. Raises ImageInputError (code
    "invalid_image", PARAM passed through) for empty data, data over MAX_BYTES, anything
    that is not a PNG, JPEG, WebP, GIF, BMP or TIFF, a truncated or corrupt file, and an
    image of more than MAX_PIXELS pixels. A tiny image (even 1x1) is accepted: the model's
    processor resizes it.
    """
    if not data:
        raise ImageInputError("the image is empty (0 bytes); send an image file", param=param)
    if len(data) > max_bytes:
        raise ImageInputError(
            f"the image is {len(data):,} bytes, over the limit of {max_bytes:,} bytes; send a "
            "smaller image",
            param=param,
        )
    try:
        # Image.open only reads the header: the size is known, no pixel is decoded yet.
        with Image.open(io.BytesIO(data), formats=FORMATS) as opened:
            _check_pixels(opened.size, max_pixels, param)
            opened.load()  # the current frame: the first, for an animated image
            upright = _upright(opened)
    except ImageInputError:
        raise
    except UnidentifiedImageError:
        raise _not_an_image(data, param) from None
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        # Pillow's own limit (Image.MAX_IMAGE_PIXELS); reached only when MAX_PIXELS is set
        # above it, or when warnings are errors (its warning is then raised).
        raise _bomb(exc, max_pixels, param) from None
    except Exception as exc:
        # Pillow's decoders answer malformed input with OSError, SyntaxError, ValueError,
        # EOFError, struct.error, IndexError... depending on the format and on where the
        # damage is; all of them mean the same thing to the person who sent the file.
        raise _corrupt(data, exc, param) from None
    return _to_rgb(upright, param)


def encode_png(image: Image.Image) -> bytes:
    """IMAGE as a PNG file's bytes (how pictures and drawings are stored)."""
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def encode_png_data_url(image: Image.Image) -> str:
    """IMAGE as a ``data:image/png;base64,...`` URL (what a chat image_url part carries)."""
    return "data:image/png;base64," + base64.b64encode(encode_png(image)).decode("ascii")


def _check_pixels(size: tuple[int, int], max_pixels: int, param: str | None) -> None:
    width, height = size
    if width < 1 or height < 1:
        raise ImageInputError(
            f"the image is corrupt: its header gives a size of {width}x{height} pixels",
            param=param,
        )
    if width * height > max_pixels:
        raise ImageInputError(
            f"the image is {width:,}x{height:,} pixels ({width * height:,} pixels), over the "
            f"limit of {max_pixels:,} pixels; send a smaller image",
            param=param,
        )


def _upright(image: Image.Image) -> Image.Image:
    """IMAGE turned as its EXIF orientation says, as a new image. A damaged EXIF block must
    not cost the user the picture: it is then used as stored."""
    try:
        upright = ImageOps.exif_transpose(image)
    except Exception:  # any EXIF parsing failure: the same answer
        upright = None
    # Always a copy: the result must not depend on the file that the caller closes.
    return upright if upright is not None and upright is not image else image.copy()


def _to_rgb(image: Image.Image, param: str | None) -> Image.Image:
    if image.mode in DEEP_GRAY_MODES:
        image = _gray_to_8bit(image)  # a transparent 16-bit grey (rare) is made opaque
    try:
        if image.mode in ALPHA_MODES or "transparency" in image.info:
            rgba = image.convert("RGBA")
            rgb = Image.alpha_composite(Image.new("RGBA", rgba.size, WHITE), rgba).convert("RGB")
        else:
            rgb = image.convert("RGB")
    except ValueError:  # a mode Pillow cannot convert (none of the six formats should give one)
        raise ImageInputError(
            f"the image's colour mode {image.mode} is not supported; save it as RGB",
            param=param,
        ) from None
    # Metadata stays behind: a photo's EXIF can hold where it was taken, and the orientation
    # is already applied (a later exif_transpose must not turn it again).
    rgb.info = {}
    return rgb


def _gray_to_8bit(image: Image.Image) -> Image.Image:
    """A 16-bit ("I;16*"), 32-bit integer ("I") or float ("F") grayscale image as "L".

    Pillow opens 16-bit PNG and TIFF as "I;16" (sometimes widened to "I"), so integers are
    read as 0..65535. Float images have no standard range: 0..1 when every value lies there,
    else 0..255. Integer arithmetic keeps a 40-megapixel image within a few hundred MB.
    """
    values = np.asarray(image)
    if image.mode == "F":
        values = np.nan_to_num(values.astype(np.float32), nan=0.0, posinf=255.0, neginf=0.0)
        if values.size and values.min() >= 0.0 and values.max() <= 1.0:
            values = values * 255.0
        gray = np.rint(np.clip(values, 0.0, 255.0)).astype(np.uint8)
    else:
        wide = np.clip(values, 0, 65535).astype(np.uint32)
        gray = ((wide * 255 + 32767) // 65535).astype(np.uint8)  # rounded, 65535 -> 255
    return Image.fromarray(gray)


def _not_an_image(data: bytes, param: str | None) -> ImageInputError:
    format_name = _signature(data)
    if format_name is not None:  # the right magic number, then garbage: a damaged file
        return ImageInputError(
            f"the {format_name} file is truncated or corrupt: its header cannot be read; "
            "send the complete file",
            param=param,
        )
    head = data[:SNIFF_BYTES]
    kind = filetype.guess(head)
    if kind is not None and kind.mime.startswith("image/"):  # HEIC, AVIF, ICO, PSD...
        return ImageInputError(
            f"images of type {kind.mime} are not supported; convert it to {FORMAT_NAMES}",
            param=param,
        )
    if kind is not None:
        what = f"its content is {kind.mime}"
    elif is_text(head):
        what = "it is text"
    else:
        what = "its content is not recognised"
    return ImageInputError(
        f"the data is not an image ({FORMAT_NAMES}): {what}; send the image file's bytes",
        param=param,
    )


def _corrupt(data: bytes, exc: Exception, param: str | None) -> ImageInputError:
    format_name = _signature(data) or "image"
    # Pillow's own words when it chose them ("image file is truncated (3 bytes not
    # processed)"); an IndexError's "tuple index out of range" would only confuse.
    reason = str(exc).strip().rstrip(".")
    detail = f" ({reason})" if reason and isinstance(exc, OSError | SyntaxError) else ""
    return ImageInputError(
        f"the {format_name} file is truncated or corrupt{detail}; send the complete file",
        param=param,
    )


def _bomb(exc: Exception, max_pixels: int, param: str | None) -> ImageInputError:
    # Pillow says "Image size (225000000 pixels) exceeds limit of 178956970 pixels, ..."
    numbers = [int(n) for n in re.findall(r"\d+", str(exc))]
    if len(numbers) >= 2:
        pixels, limit = numbers[0], min(numbers[1], max_pixels)
        return ImageInputError(
            f"the image has {pixels:,} pixels, over the limit of {limit:,} pixels; send a "
            "smaller image",
            param=param,
        )
    return ImageInputError(
        "the image has too many pixels to decode safely; send a smaller image", param=param
    )


def _signature(data: bytes) -> str | None:
    """The name of the supported format whose magic number DATA starts with, if any."""
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "PNG"
    if data.startswith(b"\xff\xd8\xff"):
        return "JPEG"
    if data.startswith((b"GIF87a", b"GIF89a")):
        return "GIF"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "WebP"
    if data.startswith((b"II*\x00", b"MM\x00*")):
        return "TIFF"
    # "BM" alone starts too much text; a BMP's info header size follows its 14-byte header.
    if data.startswith(b"BM") and data[14:18] in _BMP_INFO_SIZES:
        return "BMP"
    return None


_BMP_INFO_SIZES = {size.to_bytes(4, "little") for size in (12, 40, 52, 56, 64, 108, 124)}
