"""Images users send: decoded safely into RGB (decode.py) from chat content parts and
uploaded files (parts.py). Every input, good or bad, is built here with Pillow."""

import io
import struct
import warnings
import wave
import zlib

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image, ImageFile

from omnicoach.config import load_settings
from omnicoach.db import Database
from omnicoach.db.schema import LOCAL_USER_ID, User
from omnicoach.errors import InvalidRequestError, NotFoundError
from omnicoach.files import FileStore
from omnicoach.images.decode import ImageInputError, encode_png_data_url, load_image
from omnicoach.images.parts import image_from_part
from omnicoach.server.openai_schemas import ContentPart

NOT_AN_IMAGE = "is not an image (PNG, JPEG, WebP, GIF, BMP or TIFF)"
RED, GREEN, BLUE, WHITE = (255, 0, 0), (0, 255, 0), (0, 0, 255), (255, 255, 255)
# Modest counts: each example decodes a file. (Hypothesis keeps its failing examples in
# .hypothesis/, which it git-ignores itself.)
PROPERTY = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def encode(image: Image.Image, format: str, **params) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=format, **params)
    return buffer.getvalue()


def solid(color, size=(8, 6), mode="RGB") -> Image.Image:
    return Image.new(mode, size, color)


def near(color, expected, tolerance: int = 2) -> bool:
    """Lossless WebP animation still moves a channel by one or two."""
    return all(abs(a - b) <= tolerance for a, b in zip(color, expected, strict=True))


def refused(data: bytes, *words: str, **limits) -> str:
    """The message of the error load_image raises for DATA; it must contain WORDS."""
    with pytest.raises(ImageInputError) as caught:
        load_image(data, param="image", **limits)
    assert caught.value.code == "invalid_image"
    assert caught.value.param == "image"
    message = str(caught.value)
    for word in words:
        assert word in message
    return message


def png_chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def gray_png(width: int, height: int, *, pixels: bool = True) -> bytes:
    """An 8-bit grayscale PNG of black pixels, written row by row so that a huge one never
    exists in memory. Without PIXELS, only the header and an empty IDAT: enough for checks
    that must happen before decoding."""
    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    compressor = zlib.compressobj(9)
    row = bytes(width + 1)  # filter byte 0, then the row's pixels
    rows = b"".join(compressor.compress(row) for _ in range(height)) if pixels else b""
    return (
        b"\x89PNG\r\n\x1a\n"
        + png_chunk(b"IHDR", header)
        + png_chunk(b"IDAT", rows + compressor.flush())
        + png_chunk(b"IEND", b"")
    )


def wav_bytes() -> bytes:
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(16_000)
        out.writeframes(bytes(3200))
    return buffer.getvalue()


# --- load_image: what is refused ----------------------------------------------------------


def test_empty_data_is_refused():
    refused(b"", "empty")


def test_data_over_the_byte_limit_is_refused():
    data = encode(solid(RED), "PNG")
    refused(data, f"{len(data):,} bytes", "limit of 10 bytes", max_bytes=10)


@pytest.mark.parametrize(
    "data, what",
    [
        (b"Hold the plank and breathe.\n", "it is text"),
        (wav_bytes(), "audio/x-wav"),
        (np.random.default_rng(0).bytes(4096), "not recognised"),
    ],
    ids=["text", "wav", "random"],
)
def test_what_is_not_an_image_is_named(data, what):
    refused(data, NOT_AN_IMAGE.removeprefix("is "), what)


def test_other_image_formats_are_refused_by_name():
    # Pillow reads ICO (and dozens more); only the six formats are let through.
    refused(encode(solid(RED, (16, 16)), "ICO"), "image/x-icon", "not supported")


@pytest.mark.parametrize("format", ["PNG", "JPEG", "GIF", "WEBP", "TIFF", "BMP"])
def test_an_image_cut_in_half_is_truncated_not_padded(format):
    # Noise compresses badly, so half the file is half the pixels, not just the trailer.
    noise = Image.frombytes("RGB", (64, 64), np.random.default_rng(1).bytes(64 * 64 * 3))
    data = encode(noise, format)
    refused(data[: len(data) // 2], "truncated or corrupt")
    assert ImageFile.LOAD_TRUNCATED_IMAGES is False  # which would turn this into grey pixels


def test_a_png_cut_inside_its_header_is_called_corrupt_not_text():
    refused(encode(solid(RED), "PNG")[:20], "PNG file is truncated or corrupt")


@pytest.mark.filterwarnings("ignore::PIL.Image.DecompressionBombWarning")  # Pillow's, at 89M
def test_a_decompression_bomb_is_refused_before_decoding(monkeypatch):
    data = gray_png(10_000, 10_000)
    assert len(data) < 200_000  # 100 million pixels in a file the size of a photo thumbnail

    def no_decoding(self):
        raise AssertionError("pixels were decoded")

    monkeypatch.setattr(ImageFile.ImageFile, "load", no_decoding)
    refused(data, "10,000x10,000", "100,000,000 pixels", "limit of 40,000,000 pixels")


def test_pillows_own_bomb_limit_becomes_our_error():
    # A limit set above Pillow's lets its DecompressionBombError through to us.
    refused(
        gray_png(15_000, 15_000, pixels=False),
        "225,000,000 pixels",
        f"limit of {2 * Image.MAX_IMAGE_PIXELS:,} pixels",
        max_pixels=10**10,
    )


def test_pillows_bomb_warning_raised_as_an_error_becomes_our_error():
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        refused(
            gray_png(10_000, 10_000, pixels=False),
            "100,000,000 pixels",
            f"limit of {Image.MAX_IMAGE_PIXELS:,} pixels",
            max_pixels=10**10,
        )


# --- load_image: what is accepted, and how it is converted --------------------------------


def test_a_tiny_image_is_accepted():
    image = load_image(encode(solid(GREEN, (1, 1)), "PNG"))
    assert (image.mode, image.size, image.getpixel((0, 0))) == ("RGB", (1, 1), GREEN)


def test_the_result_is_loaded_and_carries_no_metadata():
    exif = Image.Exif()
    exif[0x010F] = "PhoneMaker"  # Make; a phone would add its GPS position
    image = load_image(encode(solid(RED), "JPEG", exif=exif, quality=95))
    assert image.mode == "RGB" and image.info == {}
    assert image.getexif().get(0x010F) is None
    assert image.getpixel((3, 3))[0] > 240


@pytest.mark.parametrize(
    "format, params",
    [("GIF", {}), ("WEBP", {"lossless": True}), ("PNG", {})],
    ids=["gif", "webp", "apng"],
)
def test_an_animated_image_gives_its_first_frame(format, params):
    frames = [solid(color) for color in (RED, GREEN, BLUE)]
    data = encode(frames[0], format, save_all=True, append_images=frames[1:], duration=100)
    assert Image.open(io.BytesIO(data)).n_frames == 3
    image = load_image(data)
    assert image.size == (8, 6) and near(image.getpixel((4, 3)), RED)


def test_a_cmyk_jpeg_becomes_rgb():
    data = encode(solid((0, 255, 255, 0), mode="CMYK"), "JPEG", quality=95)  # red in CMYK
    assert Image.open(io.BytesIO(data)).mode == "CMYK"
    r, g, b = load_image(data).getpixel((4, 3))
    assert r > 240 and g < 15 and b < 15


@pytest.mark.parametrize(
    "mode, clear, half_black",
    [("RGBA", (255, 0, 0, 0), (0, 0, 0, 128)), ("LA", (0, 0), (0, 128))],
)
def test_transparency_is_composited_over_white(mode, clear, half_black):
    image = Image.new(mode, (2, 1))
    image.putpixel((0, 0), clear)  # a fully transparent pixel: its colour does not show
    image.putpixel((1, 0), half_black)
    result = load_image(encode(image, "PNG"))
    assert result.getpixel((0, 0)) == WHITE
    assert all(abs(channel - 127) <= 1 for channel in result.getpixel((1, 0)))


@pytest.mark.parametrize("format", ["PNG", "GIF"])
def test_a_palette_images_transparent_colour_becomes_white(format):
    image = Image.new("P", (2, 1))
    image.putpalette([0, 0, 0, 255, 0, 0] + [0] * 762)
    image.putpixel((1, 0), 1)
    result = load_image(encode(image, format, transparency=0))  # index 0 (black) is clear
    assert result.getpixel((0, 0)) == WHITE and result.getpixel((1, 0)) == RED


@pytest.mark.parametrize("format", ["PNG", "TIFF"])
def test_16_bit_grayscale_is_scaled_not_clipped(format):
    values = np.array([[0, 32768, 65535]], dtype=np.uint16)
    data = encode(Image.fromarray(values), format)
    assert Image.open(io.BytesIO(data)).mode == "I;16"
    result = load_image(data)
    assert [result.getpixel((x, 0)) for x in range(3)] == [(0,) * 3, (128,) * 3, (255,) * 3]


def test_32_bit_integer_and_float_grayscale_are_scaled():
    wide = encode(Image.fromarray(np.array([[0, 32768, 65535]], dtype=np.int32)), "TIFF")
    assert Image.open(io.BytesIO(wide)).mode == "I"
    assert load_image(wide).getpixel((1, 0)) == (128,) * 3
    unit = np.array([[0.0, 0.5, 1.0, np.nan]], dtype=np.float32)
    result = load_image(encode(Image.fromarray(unit), "TIFF"))  # "F", read as 0..1
    assert [result.getpixel((x, 0))[0] for x in range(4)] == [0, 128, 255, 0]


@pytest.mark.parametrize(
    "mode, value, expected",
    [("1", 1, WHITE), ("L", 77, (77, 77, 77)), ("P", 1, RED)],
)
def test_bilevel_gray_and_palette_images_become_rgb(mode, value, expected):
    image = Image.new(mode, (3, 3), value)
    if mode == "P":
        image.putpalette([0, 0, 0, 255, 0, 0] + [0] * 762)
    result = load_image(encode(image, "PNG"))
    assert result.mode == "RGB" and result.getpixel((1, 1)) == expected


def test_the_exif_orientation_is_applied():
    stored = Image.new("RGB", (4, 2), RED)
    stored.paste(BLUE, (2, 0, 4, 2))  # left half red, right half blue
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 degrees clockwise to display", as a phone held upright
    result = load_image(encode(stored, "PNG", exif=exif))
    assert result.size == (2, 4)
    # Turned clockwise, the left (red) half is on top.
    assert result.getpixel((1, 0)) == RED and result.getpixel((1, 3)) == BLUE


def test_a_damaged_exif_block_does_not_cost_the_picture():
    image = load_image(encode(solid(GREEN), "PNG", exif=b"not a TIFF header at all"))
    assert image.getpixel((0, 0)) == GREEN


def test_encode_png_data_url_round_trips():
    url = encode_png_data_url(solid(BLUE, (3, 2)))
    assert url.startswith("data:image/png;base64,")
    part = {"type": "image_url", "image_url": {"url": url}}
    assert image_from_part(part, where="p", user=None).getpixel((2, 1)) == BLUE


# --- load_image: properties ---------------------------------------------------------------


def _seed_files() -> list[bytes]:
    noise = Image.frombytes("RGB", (12, 10), np.random.default_rng(2).bytes(360))
    frames = [noise, noise.transpose(Image.Transpose.FLIP_LEFT_RIGHT)]
    return [
        encode(noise, "PNG"),
        encode(noise, "JPEG"),
        encode(noise, "WEBP"),
        encode(noise, "GIF", save_all=True, append_images=frames[1:]),
        encode(noise, "BMP"),
        encode(noise, "TIFF", compression="tiff_lzw"),
        encode(noise.convert("CMYK"), "TIFF"),
    ]


SEEDS = _seed_files()


@st.composite
def damaged_images(draw) -> bytes:
    """A valid file with some bytes overwritten and maybe its end cut off: a fuzzer's input
    that gets past the magic number into the decoders."""
    data = bytearray(draw(st.sampled_from(SEEDS)))
    for _ in range(draw(st.integers(1, 8))):
        data[draw(st.integers(0, len(data) - 1))] = draw(st.integers(0, 255))
    return bytes(data[: draw(st.integers(1, len(data)))])


@pytest.mark.filterwarnings("ignore::UserWarning")  # Pillow's notes on damaged TIFF tags
@PROPERTY
@given(st.one_of(st.binary(max_size=2048), damaged_images()))
def test_any_bytes_give_an_rgb_image_or_our_error(data):
    # A small pixel limit: a damaged header may claim a big image, and the test must be fast.
    try:
        image = load_image(data, max_pixels=1_000_000)
    except InvalidRequestError as exc:
        assert exc.code == "invalid_image" and str(exc)
    else:
        assert image.mode == "RGB"


# What each format can store, as Pillow writes it (the mode of the image given to save).
WRITABLE = [
    ("PNG", mode) for mode in ("1", "L", "LA", "P", "RGB", "RGBA", "I;16")
] + [
    ("JPEG", "L"), ("JPEG", "RGB"), ("JPEG", "CMYK"),
    ("WEBP", "RGB"), ("WEBP", "RGBA"),
    ("GIF", "P"), ("GIF", "L"),
    ("BMP", "1"), ("BMP", "L"), ("BMP", "P"), ("BMP", "RGB"),
] + [
    ("TIFF", mode)
    for mode in ("1", "L", "LA", "P", "PA", "RGB", "RGBA", "CMYK", "YCbCr", "I;16", "I", "F")
]  # fmt: skip


@PROPERTY
@given(
    st.sampled_from(WRITABLE),
    st.integers(1, 24),
    st.integers(1, 24),
    st.integers(0, 2**32 - 1),
)
def test_any_small_valid_image_becomes_rgb_of_the_same_size(kind, width, height, seed):
    format, mode = kind
    rng = np.random.default_rng(seed)
    size = (width, height)
    # Random pixels in the mode's own layout (for "F", NaN and infinities included).
    image = Image.frombytes(mode, size, rng.bytes(len(Image.new(mode, size).tobytes())))
    if mode in ("P", "PA"):
        image.putpalette(rng.bytes(768))
    result = load_image(encode(image, format))
    assert result.mode == "RGB" and result.size == size


# --- image_from_part ----------------------------------------------------------------------


@pytest.fixture
def store(tmp_path):
    db = Database(f"sqlite:///{tmp_path / 'omnicoach.db'}")
    db.migrate()
    with db.write() as session:
        session.add(User(id="user_other", name="other", key_hash="0" * 64))
    yield db, FileStore(load_settings(data_dir=tmp_path))
    db.close()


def upload(store, data: bytes, user: str = LOCAL_USER_ID):
    db, files = store
    return files.save(db, user, io.BytesIO(data), "photo.png", "vision")


def url_part(url) -> dict:
    return {"type": "image_url", "image_url": {"url": url, "detail": "auto"}}


def part_refused(part, code: str, param: str, *words: str, **context) -> str:
    with pytest.raises(ImageInputError) as caught:
        image_from_part(part, where="messages[0].content[1]", user=LOCAL_USER_ID, **context)
    assert (caught.value.code, caught.value.param) == (code, param)
    message = str(caught.value)
    assert message.startswith(param + ":")  # several images in one request: which one
    for word in words:
        assert word in message
    return message


URL_PARAM = "messages[0].content[1].image_url.url"


def test_a_data_url_in_a_dict_or_a_pydantic_part():
    url = encode_png_data_url(solid(RED))
    for part in (url_part(url), ContentPart.model_validate(url_part(url))):
        image = image_from_part(part, where="messages[0].content[1]", user=None)
        assert (image.mode, image.size, image.getpixel((0, 0))) == ("RGB", (8, 6), RED)


def test_image_url_as_a_bare_string_is_accepted():
    part = {"type": "image_url", "image_url": encode_png_data_url(solid(RED))}
    assert image_from_part(part, where="p", user=None).getpixel((0, 0)) == RED


@pytest.mark.parametrize(
    "prefix", ["data:;base64,", "data:base64,", "data:application/octet-stream;base64,"]
)
def test_the_data_urls_media_type_may_be_missing_or_vague(prefix):
    encoded = encode_png_data_url(solid(GREEN)).split(",", 1)[1]
    image = image_from_part(url_part(prefix + encoded), where="p", user=None)
    assert image.getpixel((0, 0)) == GREEN


def test_wrapped_base64_without_padding_is_accepted():
    encoded = encode_png_data_url(solid(GREEN, (5, 5))).split(",", 1)[1].rstrip("=")
    wrapped = "\n".join(encoded[i : i + 76] for i in range(0, len(encoded), 76))
    image = image_from_part(url_part("data:image/png;base64," + wrapped), where="p", user=None)
    assert image.getpixel((0, 0)) == GREEN


@pytest.mark.parametrize(
    "url, words",
    [
        ("data:image/svg+xml,<svg/>", ["not base64-encoded"]),
        ("data:image/png;base64", ["no comma"]),
        ("data:image/png;base64,iVBOR*w0K!!", ["not valid base64"]),
        ("../../etc/passwd", ["neither a data URL nor an uploaded file's id"]),
        ("file:///etc/passwd", ["neither a data URL nor an uploaded file's id"]),
    ],
)
def test_malformed_data_urls_and_other_urls_are_refused(url, words):
    part_refused(url_part(url), "invalid_image_url", URL_PARAM, *words)


@pytest.mark.parametrize("url", ["https://example.com/cat.png", "HTTP://10.0.0.1/x.png"])
def test_http_urls_are_refused_not_fetched(url):
    part_refused(url_part(url), "unsupported_image_url", URL_PARAM, "data URL", "/v1/files")


@pytest.mark.parametrize(
    "part",
    [
        {"type": "image_url"},
        {"type": "image_url", "image_url": 5},
        {"type": "image_url", "image_url": {"detail": "auto"}},
        {"type": "image_url", "image_url": {"url": "  "}},
        ContentPart(type="image_url"),
    ],
)
def test_a_missing_or_malformed_image_url_object_is_named(part):
    param = "messages[0].content[1].image_url"
    part_refused(part, "invalid_image_url", param, '"image_url": {"url":')


def test_bytes_that_are_no_image_are_refused_with_the_parts_location():
    url = "data:image/png;base64,SGVsbG8sIHdvcmxkIQ=="  # "Hello, world!"
    part_refused(url_part(url), "invalid_image", URL_PARAM, NOT_AN_IMAGE.removeprefix("is "))


def test_an_uploaded_image_by_id_in_either_form(store):
    stored = upload(store, encode(solid(BLUE), "PNG"))
    db, files = store
    for part in (
        url_part(stored.id),
        {"type": "image_file", "image_file": {"file_id": stored.id}},
    ):
        image = image_from_part(part, where="m", user=LOCAL_USER_ID, db=db, files=files)
        assert image.getpixel((0, 0)) == BLUE


def test_another_users_file_is_not_found(store):
    stored = upload(store, encode(solid(BLUE), "PNG"), user="user_other")
    db, files = store
    with pytest.raises(NotFoundError) as caught:
        image_from_part(url_part(stored.id), where="m", user=LOCAL_USER_ID, db=db, files=files)
    assert caught.value.code == "file_not_found" and caught.value.param == "m.image_url.url"


@pytest.mark.parametrize(
    "file_id", ["file-0123456789abcdef", "file-../../etc/passwd", "../../etc/passwd", "file-"]
)
def test_unknown_and_path_like_file_ids_are_not_found(store, file_id):
    db, files = store
    part = {"type": "image_file", "image_file": {"file_id": file_id}}
    with pytest.raises(NotFoundError) as caught:
        image_from_part(part, where="m", user=LOCAL_USER_ID, db=db, files=files)
    assert caught.value.code == "file_not_found"
    assert caught.value.param == "m.image_file.file_id"


def test_an_uploaded_file_that_is_not_an_image(store):
    stored = upload(store, wav_bytes())
    db, files = store
    part_refused(url_part(stored.id), "invalid_image", URL_PARAM, "audio/x-wav", db=db, files=files)


def test_an_uploaded_file_over_the_image_limit_is_not_read(store):
    stored = upload(store, encode(solid(BLUE), "PNG"))
    db, files = store
    part_refused(
        url_part(stored.id), "invalid_image", URL_PARAM, "limit of 10 bytes",
        db=db, files=files, max_bytes=10,
    )  # fmt: skip


def test_an_uploaded_file_gone_from_disk_is_not_found(store):
    stored = upload(store, encode(solid(BLUE), "PNG"))
    db, files = store
    files.path(stored).unlink()
    with pytest.raises(NotFoundError):
        image_from_part(url_part(stored.id), where="m", user=LOCAL_USER_ID, db=db, files=files)


def test_file_ids_without_a_store_are_refused():
    part_refused(url_part("file-0123"), "invalid_image_url", URL_PARAM, "data URL")


def test_an_image_file_part_without_a_file_id():
    part = {"type": "image_file", "image_file": {"id": "file-0123"}}
    part_refused(part, "invalid_image_url", "messages[0].content[1].image_file", '"file_id"')
