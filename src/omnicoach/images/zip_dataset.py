"""A ZIP of training images, checked and read into (image, caption) pairs for a LoRA
fine-tune of the image generator.

A ZIP may be laid out in one of three ways: a ``metadata.jsonl`` makes it the first, .txt
files the second, neither the third (both at once is refused).

1. "imagefolder" (the layout of diffusers' training scripts): the images plus a
   ``metadata.jsonl``, one JSON object per line, such as
   ``{"file_name": "pose1.png", "text": "a woman in tree pose on a beach"}``.
   ``file_name`` is relative to the folder that holds ``metadata.jsonl``. The caption is
   read from the "text" key unless another column is named (``caption_column``); a line
   that has "caption" or "prompt" instead is refused with the fix spelled out. Other keys
   are ignored.
2. "captions": every image with a text file of the same name beside it
   (``poses/pose1.png`` and ``poses/pose1.txt``), in UTF-8.
3. "images_only": images and nothing else. Every image gets the same caption, made from
   the keywords: the caption template (by default "a photo of {trigger}") with
   ``{trigger}`` replaced by the trigger word, so a trigger word is then required (and a
   template without ``{trigger}`` is refused).

In layouts 1 and 2, when a trigger word is given, a caption that does not contain it
(as a word, in any case) gets "TRIGGER, " put in front: the LoRA learns to tie the
trigger word to what the images show only if every caption has it.

Images are recognised by their extension (.png .jpg .jpeg .webp .gif .bmp .tif .tiff, in
any case) and each one is decoded, so a damaged file is found now rather than hours into
training. Folders, macOS's ``__MACOSX/`` folder, hidden files such as ``.DS_Store`` and
Windows' ``Thumbs.db`` and ``desktop.ini`` are skipped; any other file is refused.

Refused, every problem listed at once in a single ZipDatasetError:
- a file that is not a ZIP, is damaged, or has password-protected entries;
- entries compressed with anything but the standard method (deflate) or none;
- a ZIP with more entries than the limit (2,000), counted before anything is read;
- paths that could escape the folder the ZIP is unpacked into: absolute paths
  (``/etc/x``, ``C:\\x``) and any ``..`` step, with / or \\ as separator; and symbolic
  links. Nothing is read from such a ZIP;
- ZIP bombs: a ZIP that unpacks to more than 512 MiB, or an entry over 1 MiB that
  unpacks to more than 200 times its compressed size. Nothing is read from such a ZIP
  either, and while reading, an entry is cut off as soon as it yields more bytes than its
  header declares;
- two entries with the same name;
- an image that cannot be decoded, or is over 20 MiB or 40 megapixels;
- a missing, empty or non-UTF-8 caption, a caption file without its image, and in
  ``metadata.jsonl`` a line that is not JSON or names an image the ZIP does not hold;
- a ZIP without any image.
Everything is read in memory; nothing is written to disk.
"""

import io
import json
import posixpath
import re
import stat
import zipfile
from dataclasses import dataclass
from typing import Literal

from PIL import Image

from omnicoach.errors import InvalidRequestError
from omnicoach.images.decode import (
    FORMAT_NAMES,
    MAX_BYTES,
    MAX_PIXELS,
    ImageInputError,
    load_image,
)

Layout = Literal["imagefolder", "captions", "images_only"]

IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".webp", ".gif", ".bmp", ".tif", ".tiff"})
METADATA_NAME = "metadata.jsonl"
DEFAULT_TEMPLATE = "a photo of {trigger}"
TRIGGER_FIELD = "{trigger}"
# Small entries may compress very well (a caption file, a flat PNG) and cost nothing, so
# the compression ratio is only checked above this size.
RATIO_FLOOR_BYTES = 2**20
CHUNK_BYTES = 2**16
# zipfile bounds deflate's output on each call; its BZIP2 and LZMA readers decompress a
# whole chunk at once, and a few kilobytes of BZIP2 can expand to gigabytes before the
# declared size is enforced. Every common ZIP tool writes deflate.
SAFE_METHODS = frozenset({zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED})
# Added by file managers, never meant as training data.
JUNK_FOLDERS = frozenset({"__macosx"})
JUNK_FILES = frozenset({"thumbs.db", "desktop.ini"})
# str(error) lists this many problems; ZipDatasetError.problems holds all of them.
MAX_LISTED = 50
# Line numbers shown for a metadata problem repeated on many lines.
MAX_LINES_SHOWN = 5


@dataclass(frozen=True)
class ZipLimits:
    """What an uploaded ZIP may hold."""

    max_files: int = 2000  # entries, folders included
    max_total_bytes: int = 512 * 2**20  # all entries, uncompressed
    max_ratio: float = 200.0  # uncompressed / compressed, for entries over 1 MiB
    max_pixels: int = MAX_PIXELS  # per image
    max_image_bytes: int = MAX_BYTES  # per image file


@dataclass(frozen=True)
class TrainingExample:
    name: str  # the entry's path in the ZIP
    image: Image.Image  # RGB, as load_image gives it
    caption: str


class ZipDatasetError(InvalidRequestError):
    """A ZIP that cannot be used for training. ``problems`` lists every problem found, each
    one sentence naming the entry (or metadata line) and what to do; str() gives a summary
    and the first MAX_LISTED of them."""

    code = "invalid_zip"

    def __init__(self, problems: list[str], param: str | None = None):
        # Problems quote names, metadata keys and captions from the upload: a newline or an
        # escape code in one would break the one-line message (or forge lines in a log).
        self.problems = [_printable(problem) for problem in problems]
        self.param = param
        super().__init__(_summary(self.problems))


class _Problem(Exception):
    """One problem with one entry or line; the caller adds where it is."""


def read_training_zip(
    data: bytes,
    trigger: str | None = None,
    caption_template: str | None = None,
    caption_column: str = "text",
    limits: ZipLimits = ZipLimits(),
) -> tuple[Layout, list[TrainingExample]]:
    """The layout DATA (a ZIP's bytes) follows and its examples, sorted by name.

    TRIGGER is the word that will call up the LoRA, CAPTION_TEMPLATE the caption of every
    image in a ZIP without captions (default "a photo of {trigger}"), CAPTION_COLUMN the
    key of metadata.jsonl that holds the caption. Raises ZipDatasetError listing every
    problem found (the module's docstring says which).
    """
    trigger = trigger.strip() if trigger and trigger.strip() else None
    template = DEFAULT_TEMPLATE if caption_template is None else caption_template.strip()
    problems: list[str] = []
    if TRIGGER_FIELD not in template:
        problems.append(
            f'the caption template "{template}" has no {TRIGGER_FIELD}; put {TRIGGER_FIELD} '
            f'where the trigger word goes, e.g. "{DEFAULT_TEMPLATE}"'
        )
    with _open(data) as archive:
        members = _scan(archive, limits, problems)  # raises if unsafe to read
        reader = _Reader(archive, limits.max_total_bytes)
        if members.metadata:
            layout: Layout = "imagefolder"
            captions = _metadata_captions(members, reader, caption_column, problems)
        elif members.texts:
            layout = "captions"
            captions = _text_captions(members, reader, problems)
        else:
            layout = "images_only"
            captions = _template_captions(members, template, trigger, problems)
        if layout != "images_only" and trigger is not None:
            captions = {key: _with_trigger(text, trigger) for key, text in captions.items()}
        images = _decode_images(members, reader, limits, problems)
    if not members.images:
        problems.append(f"the ZIP holds no images ({FORMAT_NAMES}); put the training images in it")
    if problems:
        raise ZipDatasetError(problems)
    return layout, [TrainingExample(key, images[key], captions[key]) for key in sorted(images)]


# --- the archive and its entries ------------------------------------------------------------


@dataclass
class _Members:
    """The entries to use, by path (see _clean)."""

    images: dict[str, zipfile.ZipInfo]
    texts: dict[str, zipfile.ZipInfo]  # *.txt
    metadata: dict[str, zipfile.ZipInfo]  # metadata.jsonl, in any folder


def _open(data: bytes) -> zipfile.ZipFile:
    try:
        return zipfile.ZipFile(io.BytesIO(data))
    except Exception as exc:
        # A damaged central directory comes out as BadZipFile, but also as ValueError,
        # EOFError, struct.error, UnicodeDecodeError... all mean the same to the user.
        if not data:
            message = "the upload is empty (0 bytes); send a ZIP of the training images"
        elif data.startswith(b"PK"):
            message = f"the ZIP is damaged ({_reason(exc)}); create it again"
        else:
            message = "the upload is not a ZIP file; send the training images as one .zip"
        raise ZipDatasetError([message]) from None


def _scan(archive: zipfile.ZipFile, limits: ZipLimits, problems: list[str]) -> _Members:
    """The entries worth reading, sorted into kinds, from the central directory alone.
    Problems are added to PROBLEMS; a ZIP that is unsafe to read (too many entries, a
    path or link that escapes its folder, a bomb) raises ZipDatasetError at once."""
    infos = archive.infolist()
    if len(infos) > limits.max_files:
        raise ZipDatasetError(
            [
                *problems,
                f"the ZIP has {len(infos):,} entries, over the limit of {limits.max_files:,}; "
                f"send at most {limits.max_files:,} files",
            ]
        )
    unsafe: list[str] = []
    total = sum(info.file_size for info in infos)  # declared sizes; the reader checks them
    if total > limits.max_total_bytes:
        unsafe.append(
            f"the ZIP unpacks to {total:,} bytes, over the limit of "
            f"{limits.max_total_bytes:,} bytes; send fewer or smaller images"
        )
    members = _Members({}, {}, {})
    others: list[str] = []
    seen: set[str] = set()
    duplicates: set[str] = set()
    for info in infos:
        if not info.filename:
            # An empty name (or one that starts with a NUL, where zipfile cuts names off)
            # would make info.is_dir() raise IndexError: the ZIP is damaged, say so.
            unsafe.append("an entry has no name; the ZIP is damaged, create it again")
            continue
        name = _shown(info.filename)
        if problem := _unsafe(info, limits):
            unsafe.append(f"{name}: {problem}")
            continue
        if info.is_dir() or _is_junk(info.filename):
            continue
        key = _clean(info.filename)
        if key in seen:
            if key not in duplicates:
                duplicates.add(key)
                problems.append(f"{name}: the ZIP holds two entries of this name; keep one")
            continue
        seen.add(key)
        kind = _kind(key, members)
        if kind is not None:
            kind[key] = info
        else:
            others.append(key)
    if unsafe:
        raise ZipDatasetError(problems + unsafe)
    for key in others:
        problems.append(f"{_shown(key)}: {_not_usable(key)}")
    return members


def _unsafe(info: zipfile.ZipInfo, limits: ZipLimits) -> str | None:
    name = info.filename
    # Our own reading is in memory, but a ZIP that would write outside its folder when
    # unpacked ("zip slip") is an attack, not a data set.
    # Checked as written and as used (_clean): ./C:/x and ./\x are absolute once their "./"
    # step is dropped.
    if any(n.startswith(("/", "\\")) or re.match(r"[A-Za-z]:", n) for n in (name, _clean(name))):
        return "an absolute path, which would be written anywhere on disk; zip relative paths"
    if ".." in re.split(r"[/\\]", name):
        return 'a path with "..", which would be written outside the folder; zip the folder'
    if stat.S_ISLNK(info.external_attr >> 16):  # the Unix mode, as Info-ZIP stores it
        return "a symbolic link, which could point anywhere; put the file itself in the ZIP"
    if (
        info.file_size > RATIO_FLOOR_BYTES
        and info.file_size > limits.max_ratio * info.compress_size
    ):
        ratio = info.file_size / max(info.compress_size, 1)
        return (
            f"{info.compress_size:,} bytes that unpack to {info.file_size:,} ({ratio:,.0f} to "
            f"1, over the limit of {limits.max_ratio:g} to 1), as in a ZIP bomb; send the "
            "files as they are"
        )
    return None


def _is_junk(name: str) -> bool:
    parts = [part for part in name.split("/") if part not in ("", ".")]
    return bool(parts) and (
        parts[0].lower() in JUNK_FOLDERS
        or parts[-1].lower() in JUNK_FILES
        or any(part.startswith(".") for part in parts)  # .DS_Store, ._pose1.png, .git/
    )


def _clean(name: str) -> str:
    """NAME without "./" steps or doubled slashes: how metadata.jsonl can refer to it."""
    return "/".join(part for part in name.split("/") if part not in ("", ".")) or name


def _kind(key: str, members: _Members) -> dict[str, zipfile.ZipInfo] | None:
    base = posixpath.basename(key).lower()
    suffix = posixpath.splitext(base)[1]
    if suffix in IMAGE_SUFFIXES:
        return members.images
    if base == METADATA_NAME:
        return members.metadata
    if suffix == ".txt":
        return members.texts
    return None


def _not_usable(key: str) -> str:
    base = posixpath.basename(key).lower()
    if base.startswith("metadata."):  # metadata.csv, metadata.json...
        return f"captions are read from {METADATA_NAME} (one JSON object per line); convert it"
    return (
        f"not an image or caption; the ZIP may hold images ({FORMAT_NAMES}), .txt captions and "
        f"{METADATA_NAME}; remove it"
    )


class _Reader:
    """Reads entries into memory without trusting their headers: the bytes actually
    unpacked are counted, per entry against its declared size and in all against
    ALLOWANCE, and reading stops as soon as either is passed."""

    def __init__(self, archive: zipfile.ZipFile, allowance: int):
        self.archive = archive
        self.allowance = allowance

    def read(self, info: zipfile.ZipInfo) -> bytes:
        if info.flag_bits & 0x41:  # bit 0: a password; bit 6: "strong" encryption
            raise _Problem("the entry is password-protected; create the ZIP without a password")
        if info.compress_type not in SAFE_METHODS:
            raise _Problem(
                f"the entry uses compression method {info.compress_type}; create the ZIP with "
                "the standard compression (deflate)"
            )
        limit = min(info.file_size, self.allowance)
        chunks, size = [], 0
        try:
            with self.archive.open(info) as stream:
                while chunk := stream.read(CHUNK_BYTES):
                    size += len(chunk)
                    if size > limit:
                        break
                    chunks.append(chunk)
        except Exception as exc:  # BadZipFile (a bad CRC), zlib.error, EOFError...
            raise _Problem(
                f"the entry cannot be read ({_reason(exc)}); the ZIP is damaged, create it again"
            ) from None
        # zipfile itself cuts an entry at its declared size (and then finds the CRC wrong);
        # this check does not rely on that.
        if size > info.file_size:
            raise _Problem(
                "the entry unpacks to more bytes than its header declares; the ZIP is damaged "
                "or forged, create it again"
            )
        if size > limit:
            raise _Problem(
                f"the ZIP unpacks to more than {self.allowance:,} bytes; send fewer or smaller "
                "images"
            )
        self.allowance -= size
        return b"".join(chunks)


# --- captions ---------------------------------------------------------------------------------


def _metadata_captions(
    members: _Members, reader: _Reader, column: str, problems: list[str]
) -> dict[str, str]:
    """Captions by image path, from every metadata.jsonl (file_name is relative to the
    folder that holds it)."""
    if members.texts:
        listed = ", ".join(sorted(members.texts)[:3]) + (", ..." if len(members.texts) > 3 else "")
        problems.append(
            f"the ZIP has both {METADATA_NAME} and .txt captions ({listed}); use one: remove "
            f"the .txt files or {METADATA_NAME}"
        )
    lowercase = {key.lower(): key for key in members.images}
    captions: dict[str, str] = {}
    described: dict[str, str] = {}  # image path -> where a line names it
    complete = True  # every metadata file could be read
    for meta_key in sorted(members.metadata):
        try:
            text = _text(reader.read(members.metadata[meta_key]))
        except _Problem as problem:
            problems.append(f"{_shown(meta_key)}: {problem}")
            complete = False
            continue
        folder = posixpath.dirname(meta_key)
        by_message: dict[str, list[int]] = {}  # one problem on many lines is listed once
        for number, line in enumerate(text.split("\n"), 1):
            if not line.strip():
                continue
            try:
                key, row = _metadata_row(line, column, folder, members, lowercase)
                if key in described:
                    raise _Problem(
                        f"{key} is described again (first on {described[key]}); keep one line "
                        "per image"
                    )
                described[key] = f"{meta_key} line {number}"
                captions[key] = _metadata_caption(row, column, key)
            except _Problem as problem:
                by_message.setdefault(str(problem), []).append(number)
        for message, numbers in by_message.items():
            problems.append(f"{_shown(meta_key)} {_lines(numbers)}: {message}")
    if complete:
        for key in sorted(set(members.images) - set(described)):
            problems.append(
                f"{_shown(key)}: missing caption; add a line for it to {METADATA_NAME}, e.g. "
                f'{{"file_name": "{posixpath.basename(key)}", "{column}": "..."}}'
            )
    return captions


def _metadata_row(
    line: str, column: str, folder: str, members: _Members, lowercase: dict[str, str]
) -> tuple[str, dict]:
    """The path of the image LINE describes, and LINE as a JSON object."""
    example = f'{{"file_name": "pose1.png", "{column}": "a woman in tree pose"}}'
    try:
        row = json.loads(line)
    except json.JSONDecodeError as exc:
        raise _Problem(
            f"not valid JSON ({exc.msg}); write one object per line: {example}"
        ) from None
    except (ValueError, RecursionError):  # a huge integer, a deep nesting
        raise _Problem(f"not valid JSON; write one object per line: {example}") from None
    if not isinstance(row, dict):
        raise _Problem(f"not a JSON object; write one object per line: {example}")
    file_name = row.get("file_name")
    if not isinstance(file_name, str) or not file_name.strip():
        raise _Problem(f'no "file_name" (it has {_keys(row)}); name the image the line describes')
    key = _clean(posixpath.join(folder, file_name.strip()))
    if key not in members.images:
        other = lowercase.get(key.lower())
        hint = f" (the ZIP has {_shown(other)}; names are case-sensitive)" if other else ""
        raise _Problem(
            f'"file_name": "{file_name}" is not an image in the ZIP{hint}; correct the name or '
            "add the image"
        )
    return key, row


def _metadata_caption(row: dict, column: str, key: str) -> str:
    if column not in row:
        raise _Problem(_no_column(column, row))
    caption = row[column]
    if not isinstance(caption, str):
        raise _Problem(f'"{column}" is not text; write the caption as a JSON string')
    if not caption.strip():
        raise _Problem(f"the caption of {_shown(key)} is empty; write what the image shows")
    return caption.strip()


def _keys(row: dict) -> str:
    return ", ".join(f'"{key}"' for key in row) or "no keys"


def _no_column(column: str, row: dict) -> str:
    # The column the user most likely meant: another key that holds text.
    other = next((k for k, v in row.items() if k != "file_name" and isinstance(v, str)), None)
    source = (
        'diffusers\' imagefolder reads the caption from "text"'
        if column == "text"
        else f'the caption is read from "{column}"'
    )
    fix = f'rename the key, or pass caption_column="{other}"' if other else f'add "{column}"'
    return f'no "{column}" column (it has {_keys(row)}); {source} — {fix}'


def _lines(numbers: list[int]) -> str:
    if len(numbers) == 1:
        return f"line {numbers[0]}"
    shown = ", ".join(str(n) for n in numbers[:MAX_LINES_SHOWN])
    more = len(numbers) - MAX_LINES_SHOWN
    return f"lines {shown}" + (f" and {more:,} more" if more > 0 else "")


def _text_captions(members: _Members, reader: _Reader, problems: list[str]) -> dict[str, str]:
    """Captions by image path, from the .txt file of the same name beside each image."""
    by_stem = {posixpath.splitext(key)[0]: key for key in members.texts}
    text_of: dict[str, str] = {}  # image path -> its .txt path
    for key in sorted(members.images):
        stem = posixpath.splitext(key)[0]
        if stem in by_stem:
            text_of[key] = by_stem[stem]
        else:
            problems.append(
                f"{_shown(key)}: missing caption; add {_shown(stem)}.txt beside it, as the other "
                "images have"
            )
    texts: dict[str, str] = {}
    for text_key in sorted(members.texts):
        if text_key not in text_of.values():
            problems.append(
                f"{_shown(text_key)}: a caption with no image of the same name; add the image or "
                "remove the caption"
            )
            continue
        try:
            caption = _text(reader.read(members.texts[text_key])).strip()
        except _Problem as problem:
            problems.append(f"{_shown(text_key)}: {problem}")
            continue
        if caption:
            texts[text_key] = caption
        else:
            problems.append(f"{_shown(text_key)}: the caption is empty; write what the image shows")
    return {key: texts[text_key] for key, text_key in text_of.items() if text_key in texts}


def _template_captions(
    members: _Members, template: str, trigger: str | None, problems: list[str]
) -> dict[str, str]:
    if trigger is None:
        if members.images:
            problems.append(
                f"the ZIP has no captions (no {METADATA_NAME}, no .txt files), so each image is "
                f'captioned "{template}", which needs a trigger word; give one, or add captions'
            )
        return {}
    caption = template.replace(TRIGGER_FIELD, trigger)
    return {key: caption for key in members.images}


def _with_trigger(caption: str, trigger: str) -> str:
    """CAPTION with "TRIGGER, " in front unless it has the trigger word already. As a whole
    word ("sks" is not in "asks"), in any case: CLIP's tokenizer lowercases."""
    if re.search(rf"(?<!\w){re.escape(trigger)}(?!\w)", caption, re.IGNORECASE):
        return caption
    return f"{trigger}, {caption}"


def _text(data: bytes) -> str:
    try:
        return data.decode("utf-8-sig")  # Windows Notepad starts UTF-8 with a BOM
    except UnicodeDecodeError:
        raise _Problem("the file is not UTF-8 text; save it as UTF-8") from None


# --- images -----------------------------------------------------------------------------------


def _decode_images(
    members: _Members, reader: _Reader, limits: ZipLimits, problems: list[str]
) -> dict[str, Image.Image]:
    images: dict[str, Image.Image] = {}
    for key in sorted(members.images):
        info = members.images[key]
        try:
            if info.file_size > limits.max_image_bytes:  # not worth reading
                raise _Problem(
                    f"the image is {info.file_size:,} bytes, over the limit of "
                    f"{limits.max_image_bytes:,} bytes; send a smaller image"
                )
            data = reader.read(info)
            images[key] = load_image(
                data, max_pixels=limits.max_pixels, max_bytes=limits.max_image_bytes
            )
        except (_Problem, ImageInputError) as problem:
            problems.append(f"{_shown(key)}: {problem}")
    return images


# --- messages ---------------------------------------------------------------------------------


def _summary(problems: list[str]) -> str:
    if len(problems) == 1:
        return f"the ZIP cannot be used for training: {problems[0]}"
    listed = "; ".join(f"({n}) {problem}" for n, problem in enumerate(problems[:MAX_LISTED], 1))
    more = len(problems) - MAX_LISTED
    return f"the ZIP cannot be used for training ({len(problems):,} problems): {listed}" + (
        f"; and {more:,} more" if more > 0 else ""
    )


def _shown(name: str) -> str:
    """NAME as it can appear in a one-line message: control characters escaped."""
    return name if name.isprintable() else ascii(name)


def _printable(text: str) -> str:
    """TEXT with each character that is not printable escaped, as ascii() writes it."""
    return "".join(c if c.isprintable() else ascii(c)[1:-1] for c in text)


def _reason(exc: Exception) -> str:
    """EXC's words on one line, cut short: zipfile's can quote a whole damaged header."""
    reason = " ".join(str(exc).split()).rstrip(".") or type(exc).__name__
    return reason if len(reason) <= 120 else reason[:117] + "..."
