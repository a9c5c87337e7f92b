"""ZIPs of training images (images/zip_dataset.py): the three layouts, their captions, and
everything refused. Every ZIP is built here in memory with zipfile, from 16x16 images."""

import io
import json
import stat
import struct
import warnings
import zipfile

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from omnicoach.errors import InvalidRequestError
from omnicoach.images.zip_dataset import (
    TrainingExample,
    ZipDatasetError,
    ZipLimits,
    read_training_zip,
)

RED, GREEN, BLUE = (255, 0, 0), (0, 255, 0), (0, 0, 255)
# Each example opens a ZIP and decodes a few tiny images: cheap, but kept few.
PROPERTY = settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def image_bytes(color=RED, format="PNG") -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (16, 16), color).save(buffer, format=format)
    return buffer.getvalue()


PNG = image_bytes()


def make_zip(*entries, compression=zipfile.ZIP_DEFLATED) -> bytes:
    """A ZIP of ENTRIES, each (name or ZipInfo, content as bytes or str)."""
    buffer = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # zipfile's "Duplicate name"
        with zipfile.ZipFile(buffer, "w", compression) as archive:
            for name, content in entries:
                archive.writestr(name, content)
    return buffer.getvalue()


def jsonl(*rows) -> str:
    return "".join((row if isinstance(row, str) else json.dumps(row)) + "\n" for row in rows)


def refused(data: bytes, **kwargs) -> list[str]:
    """The problems read_training_zip lists for DATA."""
    with pytest.raises(ZipDatasetError) as caught:
        read_training_zip(data, **kwargs)
    assert caught.value.code == "invalid_zip"
    assert caught.value.problems and str(caught.value).startswith("the ZIP cannot be used")
    return caught.value.problems


def only(problems: list[str], *words: str) -> str:
    """The single problem in PROBLEMS; it must contain WORDS."""
    assert len(problems) == 1, problems
    for word in words:
        assert word in problems[0]
    return problems[0]


def captions(examples: list[TrainingExample]) -> dict[str, str]:
    return {example.name: example.caption for example in examples}


def patch_central(data: bytes, name: str, offset: int, value: int) -> bytes:
    """DATA with the 32- or 16-bit field at OFFSET of NAME's central directory header set
    to VALUE (8: flags, 24: uncompressed size): a header that lies."""
    start = data.index(b"PK\x01\x02")
    while True:
        length = struct.unpack_from("<H", data, start + 28)[0]
        if data[start + 46 : start + 46 + length] == name.encode():
            break
        start = data.index(b"PK\x01\x02", start + 4)
    out = bytearray(data)
    struct.pack_into("<H" if offset == 8 else "<I", out, start + offset, value)
    return bytes(out)


@pytest.fixture
def entries_opened(monkeypatch) -> list[str]:
    """The names of the entries whose data is read (ZipFile.open), in order."""
    opened = []
    original = zipfile.ZipFile.open

    def spy(self, name, mode="r", *args, **kwargs):
        if mode == "r":  # not the writes that build the test's ZIP
            opened.append(getattr(name, "filename", name))
        return original(self, name, mode, *args, **kwargs)

    monkeypatch.setattr(zipfile.ZipFile, "open", spy)
    return opened


# --- the three layouts ------------------------------------------------------------------------


def test_imagefolder_layout_takes_captions_from_metadata_and_adds_the_trigger():
    data = make_zip(
        ("poses/b.jpg", image_bytes(GREEN, "JPEG")),
        ("poses/a.png", PNG),
        (
            "poses/metadata.jsonl",
            jsonl(
                {"file_name": "a.png", "text": "a woman in tree pose", "extra": 1},
                "",  # blank lines are skipped
                {"file_name": "./b.jpg", "text": "ZQX doing a plank"},
            ),
        ),
    )
    layout, examples = read_training_zip(data, trigger="zqx")
    assert layout == "imagefolder"
    # file_name is relative to metadata.jsonl's folder; a caption with the trigger word (in
    # any case) is kept as it is, the other gets it in front.
    assert captions(examples) == {
        "poses/a.png": "zqx, a woman in tree pose",
        "poses/b.jpg": "ZQX doing a plank",
    }
    assert all(
        example.image.mode == "RGB" and example.image.size == (16, 16) for example in examples
    )
    assert examples[0].image.getpixel((8, 8)) == RED


def test_imagefolder_reads_the_caption_column_given():
    data = make_zip(
        ("a.png", PNG), ("metadata.jsonl", jsonl({"file_name": "a.png", "prompt": "p"}))
    )
    layout, examples = read_training_zip(data, caption_column="prompt")
    assert (layout, captions(examples)) == ("imagefolder", {"a.png": "p"})


def test_captions_layout_pairs_each_image_with_its_txt():
    data = make_zip(
        ("a/b/pose1.png", PNG),
        ("a/b/pose1.txt", "\ufeffwarrior two, side view\n".encode()),  # a BOM is dropped
        ("a/b/pose2.webp", image_bytes(BLUE, "WEBP")),
        ("a/b/pose2.txt", "sks child's pose"),
    )
    layout, examples = read_training_zip(data, trigger="sks")
    assert layout == "captions"
    assert captions(examples) == {
        "a/b/pose1.png": "sks, warrior two, side view",
        "a/b/pose2.webp": "sks child's pose",
    }


def test_the_trigger_must_be_a_whole_word_to_count():
    data = make_zip(("a.png", PNG), ("a.txt", "she asks for help"))
    assert read_training_zip(data, trigger="sks")[1][0].caption == "sks, she asks for help"


def test_images_only_layout_captions_every_image_from_the_template():
    data = make_zip(("b.png", PNG), ("a.gif", image_bytes(GREEN, "GIF")))
    layout, examples = read_training_zip(data, trigger="zqx")
    assert layout == "images_only"
    assert [example.name for example in examples] == ["a.gif", "b.png"]  # sorted
    assert {example.caption for example in examples} == {"a photo of zqx"}
    _, examples = read_training_zip(data, trigger="zqx", caption_template="{trigger} yoga mat")
    assert examples[0].caption == "zqx yoga mat"


def test_a_template_without_the_trigger_field_is_refused():
    problems = refused(make_zip(("a.png", PNG)), trigger="zqx", caption_template="a photo")
    only(problems, 'caption template "a photo" has no {trigger}')


def test_images_without_captions_need_a_trigger_word():
    only(refused(make_zip(("a.png", PNG))), "no captions", "trigger word")


def test_junk_entries_and_folders_are_ignored():
    data = make_zip(
        ("photos/", b""),
        ("photos/a.png", PNG),
        ("__MACOSX/photos/._a.png", b"\x00\x05\x16\x07 resource fork"),
        ("photos/.DS_Store", b"\x00\x00\x00\x01Bud1"),
        ("photos/Thumbs.db", b"\xd0\xcf\x11\xe0"),
    )
    assert [e.name for e in read_training_zip(data, trigger="zqx")[1]] == ["photos/a.png"]


# --- captions that are wrong or missing -------------------------------------------------------


def test_a_wrong_caption_column_names_the_column_and_the_fix():
    data = make_zip(
        *((f"{name}.png", PNG) for name in "abc"),
        (
            "metadata.jsonl",
            jsonl(
                {"file_name": "a.png", "text": "mountain pose"},
                {"file_name": "b.png", "text": "chair pose"},
                {"file_name": "c.png", "caption": "boat pose"},
            ),
        ),
    )
    # c.png is described (badly), so it is not also reported as missing its caption.
    assert refused(data) == [
        'metadata.jsonl line 3: no "text" column (it has "file_name", "caption"); diffusers\' '
        'imagefolder reads the caption from "text" — rename the key, or pass '
        'caption_column="caption"'
    ]


def test_a_problem_on_many_lines_is_listed_once():
    rows = [{"file_name": f"{n}.png", "prompt": "x"} for n in range(8)]
    data = make_zip(*((f"{n}.png", PNG) for n in range(8)), ("metadata.jsonl", jsonl(*rows)))
    only(refused(data), "metadata.jsonl lines 1, 2, 3, 4, 5 and 3 more:", 'caption_column="prompt"')


def test_an_image_missing_from_metadata_is_missing_its_caption():
    data = make_zip(
        ("a.png", PNG),
        ("b.png", PNG),
        ("metadata.jsonl", jsonl({"file_name": "a.png", "text": "tree pose"})),
    )
    only(refused(data), "b.png: missing caption", "metadata.jsonl")


def test_an_image_without_its_txt_is_missing_its_caption():
    data = make_zip(("a.png", PNG), ("a.txt", "tree pose"), ("b.png", PNG))
    only(refused(data, trigger="zqx"), "b.png: missing caption", "add b.txt")


def test_bad_metadata_lines_are_each_named():
    data = make_zip(
        ("a.png", PNG),
        ("b.png", PNG),
        (
            "metadata.jsonl",
            jsonl(
                '{"file_name": "a.png", "text": "tree pose"',  # no closing brace
                {"file_name": "A.PNG", "text": "upper case"},
                {"file_name": "b.png", "text": "  "},
                ["b.png", "a list"],
                {"text": "no file name"},
            ),
        ),
    )
    problems = refused(data)
    assert problems[0].startswith("metadata.jsonl line 1: not valid JSON")
    assert problems[1].startswith('metadata.jsonl line 2: "file_name": "A.PNG" is not an image')
    assert "the ZIP has a.png; names are case-sensitive" in problems[1]
    assert problems[2] == (
        "metadata.jsonl line 3: the caption of b.png is empty; write what the image shows"
    )
    assert problems[3].startswith("metadata.jsonl line 4: not a JSON object")
    assert problems[4].startswith('metadata.jsonl line 5: no "file_name" (it has "text")')
    assert problems[5].startswith("a.png: missing caption")  # line 1 could not be read
    assert len(problems) == 6


def test_an_image_described_twice_is_a_problem():
    rows = [{"file_name": "a.png", "text": "one"}, {"file_name": "a.png", "text": "two"}]
    data = make_zip(("a.png", PNG), ("metadata.jsonl", jsonl(*rows)))
    only(refused(data), "line 2: a.png is described again (first on metadata.jsonl line 1)")


def test_bad_txt_captions_are_named():
    data = make_zip(
        ("a.png", PNG),
        ("a.txt", "pose in Latin-1: \xe9t\xe9".encode("latin-1")),
        ("b.png", PNG),
        ("b.txt", " \n"),
        ("c.txt", "a caption without its image"),
    )
    assert refused(data) == [
        "a.txt: the file is not UTF-8 text; save it as UTF-8",
        "b.txt: the caption is empty; write what the image shows",
        "c.txt: a caption with no image of the same name; add the image or remove the caption",
    ]


def test_metadata_and_txt_captions_together_are_refused():
    data = make_zip(
        ("a.png", PNG),
        ("a.txt", "tree pose"),
        ("metadata.jsonl", jsonl({"file_name": "a.png", "text": "tree pose"})),
    )
    only(refused(data), "both metadata.jsonl and .txt captions (a.txt)")


def test_other_files_are_refused_by_name():
    data = make_zip(("a.png", PNG), ("notes.pdf", b"%PDF-1.4"), ("metadata.csv", "file_name,text"))
    problems = refused(data, trigger="zqx")
    assert problems[0].startswith("notes.pdf: not an image or caption")
    assert problems[1].startswith("metadata.csv: captions are read from metadata.jsonl")


# --- images -----------------------------------------------------------------------------------


def test_an_unreadable_image_is_named_with_the_decoders_message():
    data = make_zip(("good.png", PNG), ("poses/cut.png", PNG[:40]), ("fake.jpg", b"hello"))
    problems = refused(data, trigger="zqx")
    assert problems[0].startswith("fake.jpg: the data is not an image")
    assert problems[1].startswith("poses/cut.png: the PNG file is truncated or corrupt")
    assert len(problems) == 2


def test_image_limits_apply_to_each_image():
    data = make_zip(("a.png", PNG))
    only(refused(data, trigger="z", limits=ZipLimits(max_pixels=100)), "a.png: ", "256 pixels")
    only(refused(data, trigger="z", limits=ZipLimits(max_image_bytes=10)), "a.png: ", "limit of 10")


def test_every_problem_is_reported_at_once():
    data = make_zip(
        ("a.png", PNG[:40]),
        ("b.png", PNG),
        ("c.png", PNG),
        ("notes.pdf", b"%PDF"),
        ("metadata.jsonl", jsonl({"file_name": "a.png", "caption": "x"}, {"file_name": "b.png"})),
    )
    with pytest.raises(ZipDatasetError) as caught:
        read_training_zip(data)
    error = caught.value
    assert isinstance(error, InvalidRequestError)
    assert len(error.problems) == 5  # notes.pdf, lines 1 and 2, c.png's caption, a.png
    message = str(error)
    assert message.startswith("the ZIP cannot be used for training (5 problems): (1) notes.pdf")
    assert "(5) a.png: the PNG file is truncated" in message and "\n" not in message


def test_a_zip_without_images_is_refused():
    only(refused(make_zip()), "the ZIP holds no images (PNG, JPEG, WebP, GIF, BMP or TIFF)")
    problems = refused(make_zip(("readme.txt", "hi")))
    assert problems[-1].startswith("the ZIP holds no images")


# --- what is unsafe to read -------------------------------------------------------------------


@pytest.mark.parametrize(
    "name, words",
    [
        ("../evil.png", '".."'),
        ("poses/../../evil.png", '".."'),
        ("..\\evil.png", '".."'),
        ("__MACOSX/../evil.png", '".."'),
        ("/etc/evil.png", "absolute path"),
        ("\\evil.png", "absolute path"),
        ("C:\\evil.png", "absolute path"),
        ("C:/evil.png", "absolute path"),
    ],
)
def test_paths_that_escape_the_folder_are_refused_before_reading(name, words, entries_opened):
    data = make_zip(("a.png", PNG), ("a.txt", "tree pose"), (name, PNG))
    only(refused(data), f"{name}: ", words)
    assert entries_opened == []


def test_a_symbolic_link_is_refused_before_reading(entries_opened):
    link = zipfile.ZipInfo("poses/a.png")
    link.external_attr = (stat.S_IFLNK | 0o777) << 16
    data = make_zip((link, "/etc/passwd"), ("b.png", PNG))
    only(refused(data, trigger="z"), "poses/a.png: a symbolic link")
    assert entries_opened == []


def test_too_many_entries_are_refused_before_reading(entries_opened):
    data = make_zip(*((f"{n}.png", PNG) for n in range(4)))
    only(refused(data, trigger="z", limits=ZipLimits(max_files=3)), "4 entries", "limit of 3")
    assert entries_opened == []
    assert len(read_training_zip(data, trigger="z", limits=ZipLimits(max_files=4))[1]) == 4


def test_a_zip_that_unpacks_too_big_is_refused_before_reading(entries_opened):
    data = make_zip(("a.png", PNG), ("b.png", PNG))
    limit = 2 * len(PNG) - 1
    problem = only(refused(data, trigger="z", limits=ZipLimits(max_total_bytes=limit)))
    assert problem.startswith(f"the ZIP unpacks to {2 * len(PNG):,} bytes, over the limit")
    assert entries_opened == []


def test_an_entry_compressed_like_a_bomb_is_refused_before_reading(entries_opened):
    data = make_zip(("a.png", PNG), ("a.txt", bytes(2 * 2**20)))  # 2 MiB of zeros
    assert len(data) < 10_000
    only(refused(data), "a.txt: ", "to 1, over the limit of 200 to 1", "ZIP bomb")
    assert entries_opened == []
    # Under 1 MiB, a caption file may compress as well as it likes.
    assert read_training_zip(make_zip(("a.png", PNG), ("a.txt", "x" * 2**19)))[0] == "captions"


def test_an_entry_that_unpacks_to_more_than_its_header_says_is_not_trusted():
    honest = make_zip(("a.png", PNG), compression=zipfile.ZIP_STORED)
    data = patch_central(honest, "a.png", 24, len(PNG) // 2)  # declares half its size
    # Reading stops at the declared size; the rest of the image is never unpacked.
    only(refused(data, trigger="z"), "a.png: the entry cannot be read (Bad CRC-32")
    # Declaring far more than the data holds makes it look like a bomb.
    only(refused(patch_central(honest, "a.png", 24, 50 * 2**20), trigger="z"), "ZIP bomb")


def test_password_protected_entries_are_refused():
    data = patch_central(make_zip(("a.png", PNG)), "a.png", 8, 0x1)
    only(refused(data, trigger="z"), "a.png: the entry is password-protected")


def test_compression_other_than_deflate_is_refused():
    data = make_zip(("a.png", PNG), compression=zipfile.ZIP_BZIP2)
    only(refused(data, trigger="z"), "a.png: the entry uses compression method 12")


def test_duplicate_names_are_refused():
    data = make_zip(("a.png", PNG), ("a.png", image_bytes(GREEN)), ("./b.png", PNG), ("b.png", PNG))
    problems = refused(data, trigger="z")
    assert problems == [
        "a.png: the ZIP holds two entries of this name; keep one",
        "b.png: the ZIP holds two entries of this name; keep one",
    ]


@pytest.mark.parametrize(
    "data, words",
    [
        (b"", "the upload is empty"),
        (b"file_name,text\npose1.png,tree pose\n", "not a ZIP file"),
        (PNG, "not a ZIP file"),
        (make_zip(("a.png", PNG))[:-10], "the ZIP is damaged"),
    ],
    ids=["empty", "text", "png", "truncated-zip"],
)
def test_what_is_not_a_zip_is_refused(data, words):
    only(refused(data), words)


# --- properties -------------------------------------------------------------------------------

SEEDS = [
    make_zip(("a.png", PNG), ("a.txt", "tree pose"), ("b/c.gif", image_bytes(BLUE, "GIF"))),
    make_zip(("a.png", PNG), ("metadata.jsonl", jsonl({"file_name": "a.png", "text": "t"}))),
    make_zip(("a.png", PNG), ("b.png", PNG), compression=zipfile.ZIP_STORED),
]


@st.composite
def damaged_zips(draw) -> bytes:
    """A valid ZIP with some bytes overwritten and maybe its end cut off."""
    data = bytearray(draw(st.sampled_from(SEEDS)))
    for _ in range(draw(st.integers(1, 8))):
        data[draw(st.integers(0, len(data) - 1))] = draw(st.integers(0, 255))
    return bytes(data[: draw(st.integers(1, len(data)))])


@pytest.mark.filterwarnings("ignore::UserWarning")  # Pillow's notes on damaged files
@PROPERTY
@given(st.one_of(st.binary(max_size=1024), damaged_zips()), st.sampled_from([None, "zqx"]))
def test_any_bytes_give_examples_or_our_error(data, trigger):
    # A small pixel limit: a damaged header may claim a big image.
    limits = ZipLimits(max_pixels=100_000)
    try:
        layout, examples = read_training_zip(data, trigger=trigger, limits=limits)
    except ZipDatasetError as exc:
        assert exc.problems and all(isinstance(p, str) and p for p in exc.problems)
    else:
        assert layout in ("imagefolder", "captions", "images_only") and examples
        assert all(example.image.mode == "RGB" and example.caption for example in examples)
