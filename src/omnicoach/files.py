"""Uploaded files: bytes on disk once per content hash, one database row per upload.

The type comes from the content (magic numbers; UTF-8 text without NUL bytes is text/plain),
never from the name. An upload is written to a temporary file while it is hashed and
measured; only a complete file under the limit is moved into place, so nothing is ever left
half-written, and a failed upload (too large, wrong type, disk full) leaves nothing behind.
"""

import codecs
import errno
import hashlib
import os
import re
import tempfile
from pathlib import Path, PurePath
from typing import BinaryIO

import filetype
from sqlalchemy import func, select

from omnicoach.config import Settings
from omnicoach.db import Database, owned
from omnicoach.db.schema import StoredFile
from omnicoach.errors import (
    FileTooLargeError,
    NotFoundError,
    StorageFullError,
    UnsupportedFileTypeError,
)

CHUNK = 1024 * 1024
SNIFF_BYTES = 8192
# What later features read: images (vision, image generation datasets), audio (speech; browsers
# record WebM/MP4), ZIP (training datasets) and text (evaluation, fine-tuning data).
ACCEPTED_PREFIXES = ("image/", "audio/")
ACCEPTED_TYPES = {"video/webm", "video/mp4", "application/zip", "text/plain"}
# What new_id("file-") makes, with room for OpenAI-style ids. An id is only a database key (the
# bytes are found by their hash), so anything else ("../../etc/passwd") is simply not found,
# without reaching the database.
FILE_ID = re.compile(r"file-[A-Za-z0-9_-]{1,59}")


class FileStore:
    def __init__(self, settings: Settings):
        self.root = settings.files_dir
        self.max_bytes = settings.max_upload_bytes

    def path(self, stored: StoredFile) -> Path:
        """Where STORED's bytes are: named by their sha256 only, which the server computed;
        neither the file id nor the uploaded name is ever part of a path."""
        if not _is_sha256(stored.sha256):  # only save() writes rows: a bug, not a request
            raise ValueError(f"file {stored.id} has no valid sha256: {stored.sha256!r}")
        return self.root / stored.sha256[:2] / stored.sha256

    def save(
        self, db: Database, user: str, source: BinaryIO, filename: str, purpose: str
    ) -> StoredFile:
        incoming = self.root / "incoming"
        incoming.mkdir(parents=True, exist_ok=True)
        handle, temp_name = tempfile.mkstemp(dir=incoming)
        temp = Path(temp_name)
        try:
            try:
                digest, size, head = self._copy(source, handle)
            except OSError as exc:
                if exc.errno == errno.ENOSPC:
                    raise StorageFullError("the disk is full: the file was not stored") from exc
                raise
            content_type = sniff(head)
            blob = self.root / digest[:2] / digest
            blob.parent.mkdir(exist_ok=True)
            with db.write() as session:
                # Moved into place inside the write transaction: a concurrent delete of the same
                # content (which unlinks inside its own transaction) cannot slip in between.
                os.replace(temp, blob)
                stored = StoredFile(
                    user_id=user,
                    filename=_safe_name(filename),
                    purpose=purpose,
                    sha256=digest,
                    content_type=content_type,
                    bytes=size,
                )
                session.add(stored)
            return stored
        finally:
            temp.unlink(missing_ok=True)

    def _copy(self, source: BinaryIO, handle: int) -> tuple[str, int, bytes]:
        sha, size, head = hashlib.sha256(), 0, b""
        with os.fdopen(handle, "wb") as out:
            while chunk := source.read(CHUNK):
                size += len(chunk)
                if size > self.max_bytes:
                    raise FileTooLargeError(
                        f"the file is larger than the upload limit of {self.max_bytes} bytes"
                    )
                if len(head) < SNIFF_BYTES:
                    head += chunk[: SNIFF_BYTES - len(head)]
                sha.update(chunk)
                out.write(chunk)
            out.flush()
            os.fsync(out.fileno())
        if size == 0:
            raise UnsupportedFileTypeError("the file is empty")
        return sha.hexdigest(), size, head

    def get(self, db: Database, user: str, file_id: str) -> StoredFile:
        _check_id(file_id)
        with db.read() as session:
            return owned(session, StoredFile, file_id, user, "file")

    def list_for(self, db: Database, user: str, purpose: str | None = None) -> list[StoredFile]:
        query = select(StoredFile).where(StoredFile.user_id == user)
        if purpose:
            query = query.where(StoredFile.purpose == purpose)
        with db.read() as session:
            return list(session.scalars(query.order_by(StoredFile.created_at.desc())))

    def delete(self, db: Database, user: str, file_id: str) -> None:
        """Forget the upload; the bytes go too when no other upload has the same content."""
        _check_id(file_id)
        with db.write() as session:
            stored = owned(session, StoredFile, file_id, user, "file")
            session.delete(stored)
            session.flush()
            others = session.scalar(select(func.count()).where(StoredFile.sha256 == stored.sha256))
            if others == 0:
                self.path(stored).unlink(missing_ok=True)


def sniff(head: bytes) -> str:
    """The MIME type of content starting with HEAD; raises for types omnicoach does not use."""
    kind = filetype.guess(head)
    if kind is not None:
        if kind.mime.startswith(ACCEPTED_PREFIXES) or kind.mime in ACCEPTED_TYPES:
            return kind.mime
        raise UnsupportedFileTypeError(
            f"files of type {kind.mime} are not accepted; send an image, audio, ZIP or text file"
        )
    if is_text(head):
        return "text/plain"
    raise UnsupportedFileTypeError(
        "the file's type is not recognised from its content; send an image, audio, ZIP or "
        "UTF-8 text file"
    )


def is_text(head: bytes) -> bool:
    """UTF-8 text without NUL bytes (a character cut at the end of HEAD is fine)."""
    if b"\x00" in head:
        return False
    try:  # an incremental decoder tolerates a character cut at the end of the sample
        codecs.getincrementaldecoder("utf-8")().decode(head, final=False)
    except UnicodeDecodeError:
        return False
    return True


def _check_id(file_id: str) -> None:
    if not FILE_ID.fullmatch(file_id):
        raise NotFoundError("file", file_id[:80])


def _is_sha256(text: str) -> bool:
    return len(text) == 64 and all(c in "0123456789abcdef" for c in text)


def _safe_name(filename: str) -> str:
    """Just the last path component: a name is shown, never used as a path."""
    name = PurePath(filename.replace("\\", "/")).name.strip()
    return name[:255] or "upload"
