"""OpenAI's files API: upload, list, read, download and delete the caller's files."""

from typing import Annotated

from fastapi import APIRouter, File, Form, Query, Request, UploadFile
from fastapi.responses import FileResponse
from starlette.concurrency import run_in_threadpool

from omnicoach.db.schema import StoredFile
from omnicoach.server.auth import CurrentUser
from omnicoach.server.pagination import cursor_page

router = APIRouter(prefix="/v1/files", tags=["files"])


def file_object(stored: StoredFile) -> dict:
    return {
        "id": stored.id,
        "object": "file",
        "bytes": stored.bytes,
        "created_at": int(stored.created_at),
        "filename": stored.filename,
        "purpose": stored.purpose,
        "status": "processed",
        # Extensions: the type sniffed from the content, and its hash.
        "content_type": stored.content_type,
        "sha256": stored.sha256,
    }


@router.post("")
async def upload_file(
    request: Request,
    user: CurrentUser,
    file: Annotated[UploadFile, File(description="The file; its type is read from its bytes.")],
    purpose: Annotated[str, Form(min_length=1, max_length=64)] = "user_data",
) -> dict:
    store = request.app.state.files
    stored = await run_in_threadpool(
        store.save, request.app.state.db, user, file.file, file.filename or "upload", purpose
    )
    return file_object(stored)


@router.get("")
def list_files(
    request: Request,
    user: CurrentUser,
    purpose: str | None = None,
    after: str | None = None,
    limit: Annotated[int, Query(ge=1, le=10_000)] = 10_000,
) -> dict:
    found = request.app.state.files.list_for(request.app.state.db, user, purpose)
    return cursor_page(found, file_object, after, limit)


@router.get("/{file_id}")
def get_file(file_id: str, request: Request, user: CurrentUser) -> dict:
    return file_object(request.app.state.files.get(request.app.state.db, user, file_id))


@router.get(
    "/{file_id}/content",
    response_class=FileResponse,  # the file's own type, sniffed when it was uploaded
    responses={200: {"content": {"*/*": {}}}},
)
def download_file(file_id: str, request: Request, user: CurrentUser) -> FileResponse:
    store = request.app.state.files
    stored = store.get(request.app.state.db, user, file_id)
    return FileResponse(
        store.path(stored), media_type=stored.content_type, filename=stored.filename
    )


@router.delete("/{file_id}")
def delete_file(file_id: str, request: Request, user: CurrentUser) -> dict:
    request.app.state.files.delete(request.app.state.db, user, file_id)
    return {"id": file_id, "object": "file", "deleted": True}
