"""A job's input file: one the caller uploaded, checked when the job is created."""

from collections.abc import Callable
from pathlib import Path

from omnicoach.errors import InvalidRequestError, NotFoundError
from omnicoach.files import FileStore
from omnicoach.jobs.context import InvalidParam, Submission


def checked_upload(caller: Submission, file_id: str, read: Callable[[Path], object]) -> None:
    """The caller's file FILE_ID must exist and READ must accept it; otherwise the job is
    refused now (an error on params.file_id naming the upload), not after it starts."""
    files = FileStore(caller.settings)
    try:
        stored = files.get(caller.db, caller.user_id, file_id)
    except NotFoundError as exc:
        raise InvalidParam("file_id", exc) from exc
    path = files.path(stored)
    try:
        read(path)
    except InvalidRequestError as exc:  # messages name the stored path: show the upload's name
        message = str(exc).replace(str(path), stored.filename)
        raise InvalidParam("file_id", InvalidRequestError(message)) from exc
