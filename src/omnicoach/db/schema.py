"""The tables: users (API keys), conversations and their messages, uploaded files, jobs.

Portable SQL only (SQLite by default, PostgreSQL by configuration): string ids made here, times
as Unix seconds in floats, JSON columns for free-form parts. Every change to this file needs an
Alembic migration in ``migrations/versions`` (a test compares the two).
"""

import time
import uuid
from typing import Any

from sqlalchemy import JSON, Boolean, Float, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

LOCAL_USER_ID = "local"  # owns everything while auth is off


def new_id(prefix: str) -> str:
    return f"{prefix}{uuid.uuid4().hex}"


class Base(DeclarativeBase):
    type_annotation_map = {dict[str, Any]: JSON, list[Any]: JSON}


class User(Base):
    """One API key is one user. The local user has no key."""

    __tablename__ = "users"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    # sha256 of the key: keys are long random strings, so a plain hash cannot be reversed.
    key_hash: Mapped[str | None] = mapped_column(String(64), unique=True)
    created_at: Mapped[float] = mapped_column(Float, default=time.time)


class Conversation(Base):
    __tablename__ = "conversations"
    __table_args__ = (Index("ix_conversations_user_updated", "user_id", "updated_at"),)

    id: Mapped[str] = mapped_column(String(64), primary_key=True, default=lambda: new_id("conv_"))
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    title: Mapped[str] = mapped_column(String(200), default="")
    created_at: Mapped[float] = mapped_column(Float, default=time.time)
    updated_at: Mapped[float] = mapped_column(Float, default=time.time)

    messages: Mapped[list["Message"]] = relationship(
        back_populates="conversation",
        order_by="Message.id",
        cascade="all, delete-orphan",
        passive_deletes=True,
    )


class Message(Base):
    __tablename__ = "messages"
    # AUTOINCREMENT on SQLite, so an id is never reused after a delete (regenerate deletes the
    # last answer; a client holding its old id must not hit the new one).
    __table_args__ = (
        Index("ix_messages_conversation", "conversation_id", "id"),
        Index("ix_messages_status", "status"),
        {"sqlite_autoincrement": True},
    )

    # Increasing, so the order of a conversation is the order of its ids.
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    conversation_id: Mapped[str] = mapped_column(ForeignKey("conversations.id", ondelete="CASCADE"))
    role: Mapped[str] = mapped_column(String(16))
    content: Mapped[str] = mapped_column(Text)
    # "complete", or "incomplete" for an answer cut short (stopped, disconnected, failed, the
    # server died); "generating" while an answer streams (omnicoach.conversations).
    status: Mapped[str] = mapped_column(String(16), default="complete")
    model: Mapped[str | None] = mapped_column(String(200))
    # An answer's numbered sources ([{index, id, title, source}]), when it was grounded.
    sources: Mapped[list | None] = mapped_column(JSON, nullable=True)
    # A user message's pictures: ids of the stored files (purpose "vision"), oldest first.
    images: Mapped[list | None] = mapped_column(JSON, nullable=True)
    created_at: Mapped[float] = mapped_column(Float, default=time.time)
    # While an answer is "generating": the server process writing it ("host:pid:start time")
    # and when it last saved its text, so a dead server's answers can be told from a live
    # one's when several servers share the database (conversations.recover_interrupted).
    writer: Mapped[str | None] = mapped_column(String(255))
    saved_at: Mapped[float | None] = mapped_column(Float)

    conversation: Mapped[Conversation] = relationship(back_populates="messages")


class StoredFile(Base):
    """An upload. The bytes live on disk once per content hash; rows are per user."""

    __tablename__ = "files"
    __table_args__ = (Index("ix_files_user", "user_id", "created_at"),)

    id: Mapped[str] = mapped_column(String(64), primary_key=True, default=lambda: new_id("file-"))
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    filename: Mapped[str] = mapped_column(String(255))
    purpose: Mapped[str] = mapped_column(String(64))
    sha256: Mapped[str] = mapped_column(String(64), index=True)
    content_type: Mapped[str] = mapped_column(String(100))
    bytes: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[float] = mapped_column(Float, default=time.time)


class Job(Base):
    __tablename__ = "jobs"
    __table_args__ = (Index("ix_jobs_user", "user_id", "created_at"),)

    id: Mapped[str] = mapped_column(String(64), primary_key=True, default=lambda: new_id("job_"))
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(64))
    params: Mapped[dict[str, Any]] = mapped_column(default=dict)
    # queued → running → succeeded | failed | cancelled
    status: Mapped[str] = mapped_column(String(16), default="queued")
    progress: Mapped[float] = mapped_column(Float, default=0.0)
    cancel_requested: Mapped[bool] = mapped_column(Boolean, default=False)
    result: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    error: Mapped[str | None] = mapped_column(Text)
    # Names of files in the job's artifact folder (Settings.jobs_dir / id).
    artifacts: Mapped[list[Any]] = mapped_column(default=list)
    created_at: Mapped[float] = mapped_column(Float, default=time.time)
    started_at: Mapped[float | None] = mapped_column(Float)
    finished_at: Mapped[float | None] = mapped_column(Float)
    # The worker process running it ("host:pid:process start time") and when that worker last
    # said it is alive; a job whose worker is gone is run again (jobs/recovery.py).
    worker: Mapped[str | None] = mapped_column(String(255))
    heartbeat_at: Mapped[float | None] = mapped_column(Float)
    # How many times a worker has started it: a job that kills its worker is not run forever.
    attempts: Mapped[int] = mapped_column(Integer, default=0)


class JobLog(Base):
    __tablename__ = "job_logs"
    __table_args__ = (Index("ix_job_logs_job", "job_id", "id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    job_id: Mapped[str] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"))
    created_at: Mapped[float] = mapped_column(Float, default=time.time)
    line: Mapped[str] = mapped_column(Text)


class JobMetric(Base):
    """One point of a job's metric series, e.g. ("loss", step 10, 2.31)."""

    __tablename__ = "job_metrics"
    __table_args__ = (Index("ix_job_metrics_job", "job_id", "id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    job_id: Mapped[str] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(64))
    step: Mapped[int] = mapped_column(Integer)
    value: Mapped[float] = mapped_column(Float)
    created_at: Mapped[float] = mapped_column(Float, default=time.time)
