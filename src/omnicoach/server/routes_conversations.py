"""REST routes for stored conversations. Chat into one with /v1/chat/completions and
``conversation_id``; these routes create, list, read, rename and delete them."""

from typing import Annotated

from fastapi import APIRouter, Query, Request
from pydantic import BaseModel, Field

from omnicoach import conversations
from omnicoach.db.schema import Conversation, Message
from omnicoach.errors import NotFoundError
from omnicoach.server.auth import CurrentUser
from omnicoach.server.openai_schemas import StoredText
from omnicoach.server.pagination import cursor_page

router = APIRouter(prefix="/conversations", tags=["conversations"])


class ConversationCreate(BaseModel):
    title: StoredText = Field(default="", max_length=200)


class ConversationRename(BaseModel):
    title: StoredText = Field(min_length=1, max_length=200)


def conversation_object(conversation: Conversation) -> dict:
    return {
        "id": conversation.id,
        "object": "conversation",
        "title": conversation.title,
        "created_at": int(conversation.created_at),
        "updated_at": int(conversation.updated_at),
    }


def message_object(message: Message) -> dict:
    return {
        "id": f"msg_{message.id}",
        "object": "conversation.message",
        "role": message.role,
        "content": message.content,
        "status": message.status,
        "model": message.model,
        "sources": message.sources or [],
        "images": message.images or [],  # file ids: GET /v1/files/{id}/content
        "created_at": int(message.created_at),
    }


@router.post("", status_code=201)
def create_conversation(body: ConversationCreate, request: Request, user: CurrentUser) -> dict:
    return conversation_object(conversations.create(request.app.state.db, user, body.title))


@router.get("")
def list_conversations(
    request: Request,
    user: CurrentUser,
    after: str | None = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> dict:
    """Most recently active first."""
    found = conversations.list_for(request.app.state.db, user)
    return cursor_page(found, conversation_object, after, limit)


@router.get("/{conversation_id}")
def get_conversation(conversation_id: str, request: Request, user: CurrentUser) -> dict:
    return conversation_object(conversations.get(request.app.state.db, user, conversation_id))


@router.patch("/{conversation_id}")
def rename_conversation(
    conversation_id: str, body: ConversationRename, request: Request, user: CurrentUser
) -> dict:
    db = request.app.state.db
    return conversation_object(conversations.rename(db, user, conversation_id, body.title))


@router.delete("/{conversation_id}")
def delete_conversation(conversation_id: str, request: Request, user: CurrentUser) -> dict:
    conversations.delete(request.app.state.db, user, conversation_id)
    return {"id": conversation_id, "object": "conversation.deleted", "deleted": True}


@router.get("/{conversation_id}/messages")
def list_messages(conversation_id: str, request: Request, user: CurrentUser) -> dict:
    found = conversations.messages(request.app.state.db, user, conversation_id)
    return {"object": "list", "data": [message_object(m) for m in found]}


@router.delete("/{conversation_id}/messages/{message_id}")
def delete_messages_from(
    conversation_id: str, message_id: str, request: Request, user: CurrentUser
):
    """Delete this message and all after it: to regenerate an answer, delete it, then chat
    with the conversation and no new message."""
    number = message_id.removeprefix("msg_")
    if not number.isdigit():
        raise NotFoundError("message", message_id)
    deleted = conversations.truncate(request.app.state.db, user, conversation_id, int(number))
    return {"id": message_id, "object": "conversation.message.deleted", "deleted": deleted}
