"""Conversations and their messages, per user, in the database."""

import time

from sqlalchemy import select

from omnicoach.db import Database, owned
from omnicoach.db.schema import Conversation, Message
from omnicoach.errors import NotFoundError

TITLE_LENGTH = 60


def create(db: Database, user: str, title: str = "") -> Conversation:
    with db.write() as session:
        conversation = Conversation(user_id=user, title=title.strip())
        session.add(conversation)
    return conversation


def list_for(db: Database, user: str) -> list[Conversation]:
    """The user's conversations, most recently active first."""
    with db.read() as session:
        query = (
            select(Conversation)
            .where(Conversation.user_id == user)
            .order_by(Conversation.updated_at.desc())
        )
        return list(session.scalars(query))


def get(db: Database, user: str, conversation_id: str) -> Conversation:
    with db.read() as session:
        return _owned(session, user, conversation_id)


def messages(db: Database, user: str, conversation_id: str) -> list[Message]:
    with db.read() as session:
        return list(_owned(session, user, conversation_id).messages)


def rename(db: Database, user: str, conversation_id: str, title: str) -> Conversation:
    with db.write() as session:
        conversation = _owned(session, user, conversation_id)
        conversation.title = title.strip()
        conversation.updated_at = time.time()
    return conversation


def delete(db: Database, user: str, conversation_id: str) -> None:
    with db.write() as session:
        session.delete(_owned(session, user, conversation_id))


def truncate(db: Database, user: str, conversation_id: str, message_id: int) -> int:
    """Delete the message and every later one (to edit or regenerate); returns how many."""
    with db.write() as session:
        conversation = _owned(session, user, conversation_id)
        doomed = [m for m in conversation.messages if m.id >= message_id]
        if not doomed or doomed[0].id != message_id:
            raise NotFoundError("message", f"msg_{message_id}")
        for message in doomed:
            session.delete(message)
        conversation.updated_at = time.time()
    return len(doomed)


def append(
    db: Database,
    user: str,
    conversation_id: str,
    role: str,
    content: str,
    status: str = "complete",
    model: str | None = None,
    sources: list[dict] | None = None,
    images: list[str] | None = None,
) -> Message:
    """Add a message at the end; an untitled conversation is named after its first question."""
    with db.write() as session:
        conversation = _owned(session, user, conversation_id)
        message = Message(
            conversation_id=conversation.id,
            role=role,
            content=content,
            status=status,
            model=model,
            sources=sources or None,
            images=images or None,
        )
        session.add(message)
        conversation.updated_at = time.time()
        if not conversation.title and role == "user":
            conversation.title = _title_from(content) or ("A picture" if images else "")
    return message


def _owned(session, user: str, conversation_id: str) -> Conversation:
    return owned(session, Conversation, conversation_id, user, "conversation")


def _title_from(text: str) -> str:
    line = " ".join(text.split())
    return line if len(line) <= TITLE_LENGTH else line[: TITLE_LENGTH - 1].rstrip() + "…"
