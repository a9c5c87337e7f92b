"""Conversations and their messages, per user, in the database."""

import logging
import time

from sqlalchemy import select, update

from omnicoach.db import Database, owned
from omnicoach.db.schema import Conversation, Message
from omnicoach.errors import NotFoundError
from omnicoach.process_owner import is_gone, this_process

log = logging.getLogger(__name__)

TITLE_LENGTH = 60

# A message's status. An answer is stored "generating" when it starts and its text is updated
# while it streams; it ends "complete", or "incomplete" when cut short (stopped, client gone,
# failed) or when the server died meanwhile (see recover_interrupted).
COMPLETE, INCOMPLETE, GENERATING = "complete", "incomplete", "generating"
# An answer "generating" on another host with no save for this long has lost its server.
WRITER_TIMEOUT_S = 180.0
RECOVERY_SWEEP_S = 60.0  # each server looks for answers whose server died this often


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
    status: str = COMPLETE,
    model: str | None = None,
    sources: list[dict] | None = None,
    images: list[str] | None = None,
) -> Message:
    """Add a message at the end; an untitled conversation is named after its first question.
    An answer added "generating" records this process as its writer."""
    with db.write() as session:
        conversation = _owned(session, user, conversation_id)
        generating = status == GENERATING
        message = Message(
            conversation_id=conversation.id,
            role=role,
            content=content,
            status=status,
            model=model,
            sources=sources or None,
            images=images or None,
            writer=this_process() if generating else None,
            saved_at=time.time() if generating else None,
        )
        session.add(message)
        conversation.updated_at = time.time()
        if not conversation.title and role == "user":
            conversation.title = _title_from(content) or ("A picture" if images else "")
    return message


def update_generating(db: Database, message_id: int, content: str) -> bool:
    """Save the text so far of an answer that is still streaming. Only while it is
    "generating": a late write never undoes its end (finish_answer) nor a restart's recovery.
    False when nothing was updated (it ended, or was deleted meanwhile)."""
    with db.write() as session:
        query = (
            update(Message)
            .where(Message.id == message_id, Message.status == GENERATING)
            .values(content=content, saved_at=time.time())
        )
        return session.execute(query).rowcount > 0


def finish_answer(db: Database, message_id: int, content: str, status: str) -> bool:
    """Store an answer's final text and status; False when it was deleted meanwhile (edit,
    regenerate, conversation deleted): it stays deleted."""
    with db.write() as session:
        message = session.get(Message, message_id)
        if message is None:
            return False
        message.content, message.status = content, status
        message.writer = message.saved_at = None  # written: no one's any more
        message.conversation.updated_at = time.time()
    return True


def recover_interrupted(db: Database, now: float | None = None) -> int:
    """Mark "incomplete" every answer still "generating" whose server is gone; returns how many.

    A server runs this when it starts, before it takes requests, and every RECOVERY_SWEEP_S
    after (several servers may share a database). Such an answer was being written by a server
    process that died (killed, power loss), and its text is what had been saved of it. The
    writer is gone by process_owner's rule: on this host, its process is gone; on another host,
    it has not saved for WRITER_TIMEOUT_S (it saves twice a second while tokens come). A live
    server's answers are left alone.
    """
    now = time.time() if now is None else now
    with db.read() as session:  # most sweeps find nothing: no write lock for them
        query = select(Message.id, Message.writer, Message.saved_at).where(
            Message.status == GENERATING
        )
        gone = [
            row.id
            for row in session.execute(query)
            if is_gone(row.writer, row.saved_at, now, WRITER_TIMEOUT_S)
        ]
    if not gone:
        return 0
    with db.write() as session:  # still "generating": it did not end meanwhile
        query = (
            update(Message)
            .where(Message.id.in_(gone), Message.status == GENERATING)
            .values(status=INCOMPLETE, writer=None, saved_at=None)
        )
        recovered = session.execute(query).rowcount
    if recovered:
        log.warning("%d answer(s) cut short by a server stop are kept as incomplete", recovered)
    return recovered


def _owned(session, user: str, conversation_id: str) -> Conversation:
    return owned(session, Conversation, conversation_id, user, "conversation")


def _title_from(text: str) -> str:
    line = " ".join(text.split())
    return line if len(line) <= TITLE_LENGTH else line[: TITLE_LENGTH - 1].rstrip() + "…"
