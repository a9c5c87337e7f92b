"""A turn in a stored conversation: history in, both new turns out.

The user's new messages are saved before the answer starts. The answer is stored as it streams:
inserted with status "generating" when it starts, its text saved again at most every
PROGRESS_INTERVAL_S, and its final text and status written when it ends: "complete", or
"incomplete" when it ends early (client gone, stopped, failed), so nothing the user saw is
lost. If the server process dies mid-answer (kill -9, power loss), the row keeps the text saved
last, and the next start marks it "incomplete" (conversations.recover_interrupted).
"""

import logging
import math
import threading
import time
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor

from omnicoach import conversations
from omnicoach.db import Database
from omnicoach.errors import ConflictError, InvalidRequestError

log = logging.getLogger(__name__)

# How often a streaming answer's text is saved, at most. A lost tail is at most this long;
# each save is one small UPDATE (SQLite serialises writers, so fewer is kinder to the others).
PROGRESS_INTERVAL_S = 0.5
# The answers' first inserts and progress saves, one at a time on their own thread: a stream
# never waits for one (nor for the SQLite write lock), and they cannot pile up (see
# LiveAnswer.progress).
_answer_writer = ThreadPoolExecutor(1, thread_name_prefix="answer-progress")


class StoredConversation:
    progress_interval = PROGRESS_INTERVAL_S  # per instance in tests

    def __init__(self, db: Database, user: str, conversation_id: str, store_pictures=None):
        self.db, self.user, self.id = db, user, conversation_id
        self.new_turns: list[dict] = []
        self.live: LiveAnswer | None = None  # the answer being recorded
        self._cut = False  # cut_short() was called
        # STORE_PICTURES(pictures) → file ids: how a new turn's pictures are kept.
        self.store_pictures = store_pictures

    def with_history(self, messages: list[dict]) -> list[dict]:
        """The request's system messages, then the stored history, then the new turns.

        With no new turn, the conversation must end with a user message: it is answered
        again (regenerate after deleting the old answer).

        System messages apply to this request only (they are not stored), so a client can
        change its system prompt between turns.
        """
        history = conversations.messages(self.db, self.user, self.id)
        system = [m for m in messages if m["role"] == "system"]
        self.new_turns = [m for m in messages if m["role"] != "system"]
        # No new turn: answer the stored last question again (regenerate).
        if not self.new_turns and history and history[-1].status == conversations.GENERATING:
            raise ConflictError(
                "the conversation's last answer is still being generated: wait for it, or "
                "stop it and delete it to regenerate",
                code="answer_in_progress",
                param="messages",
            )
        if not self.new_turns and (not history or history[-1].role != "user"):
            error = InvalidRequestError(
                "messages holds no new user turn and the conversation does not end with one"
            )
            error.param = "messages"
            raise error
        # An answer still "generating" belongs to a concurrent request (a dead server's are
        # marked "incomplete" at start): its text is a moving, half-written prefix, so it is
        # left out of this prompt, as if that question were still unanswered, rather than fed
        # to the model as a finished answer. It still counts as the last message above, so a
        # regenerate cannot start a second answer to the same question while one streams.
        # Answers cut short ("incomplete") are kept in the prompt: they are what the user saw.
        earlier = [
            {"role": m.role, "content": m.content, "image_files": m.images or []}
            for m in history
            if (m.content or m.images) and m.status != conversations.GENERATING
        ]
        return system + earlier + self.new_turns

    def save_question(self) -> None:
        for turn in self.new_turns:
            images = None
            if turn.get("pictures") and self.store_pictures is not None:
                images = self.store_pictures(turn["pictures"])
            conversations.append(
                self.db, self.user, self.id, turn["role"], turn["content"], images=images
            )

    def recorded(
        self, deltas: Iterator[str], model: str, sources: list[dict], images=None
    ) -> Iterator[str]:
        """Pass the deltas through, storing the answer as it streams and once they end,
        however they end, with IMAGES (ids of stored files, e.g. a drawing) when given."""
        answer = self.live = LiveAnswer(self, model, sources, images, self.progress_interval)
        finished = False
        try:
            # Inserted on the writer's thread, so the insert overlaps the prompt's prefill
            # instead of delaying the first delta.
            _answer_writer.submit(answer.start)
            for delta in deltas:
                answer.parts.append(delta)
                yield delta
                answer.progress(answer.parts)  # after the delta was handed on
            finished = not self._cut
        finally:
            status = conversations.COMPLETE if finished else conversations.INCOMPLETE
            answer.finish("".join(answer.parts), status)

    def cut_short(self) -> None:
        """The answer being recorded ends now, "incomplete", with what it said so far: the
        client left or stopped it. Called from any thread; what the answer's own thread does
        after this changes nothing stored."""
        self._cut = True
        if self.live is not None:
            self.live.finish("".join(self.live.parts), conversations.INCOMPLETE)


class LiveAnswer:
    """One answer's row while it streams: inserted "generating" (start, on the writer thread),
    its text saved at most every INTERVAL seconds (progress, never waited for), then its final
    text and status (finish). Exactly one row per answer, whatever order these run in."""

    def __init__(
        self,
        conversation: StoredConversation,
        model: str,
        sources: list[dict],
        images,
        interval: float = PROGRESS_INTERVAL_S,
    ):
        self.conversation, self.model, self.sources = conversation, model, sources
        self.images = images or None
        self.interval = interval
        self.id: int | None = None  # the row, once inserted
        self.parts: list[str] = []  # the deltas handed on so far
        self.finished = False
        # start and finish hold it while writing: finish waits for an insert under way, and
        # an insert that had not begun yet when finish ran does not happen at all.
        self._lock = threading.Lock()
        self._saved_at = -math.inf  # the first delta is saved at once
        self._saving: Future | None = None

    def start(self) -> None:
        with self._lock:
            if self.finished:
                return
            try:
                self.id = self._append("", conversations.GENERATING)
            except Exception:  # e.g. deleted meanwhile; the client still gets its answer
                log.exception("could not store the answer in conversation %s", self.conversation.id)

    def progress(self, parts: list[str]) -> None:
        """Save the text so far if INTERVAL has passed since the last save. The save runs on
        the writer thread after the insert (one thread, in order), never waited for here."""
        if self.finished:
            return
        now = time.monotonic()
        if now - self._saved_at < self.interval:
            return
        if self._saving is not None and not self._saving.done():
            return  # the writer is behind (a busy database): the next save carries more text
        self._saved_at = now
        self._saving = _answer_writer.submit(self._save_progress, "".join(parts))

    def _save_progress(self, text: str) -> None:
        if self.id is None:  # the insert failed, or finish() wrote the row already
            return
        try:
            conversations.update_generating(self.conversation.db, self.id, text)
        except Exception:  # the final write (or a restart's recovery) still comes
            log.warning("could not save the answer so far (msg_%s)", self.id, exc_info=True)

    def finish(self, text: str, status: str) -> None:
        """The final text and status, once: a later call changes nothing. A progress save
        still in flight cannot undo this: it only writes while the row is "generating"."""
        with self._lock:
            if self.finished:
                return
            self.finished = True
            try:
                if self.id is None:  # never inserted (the insert failed or never ran)
                    self.id = self._append(text, status)
                elif not conversations.finish_answer(self.conversation.db, self.id, text, status):
                    log.info("answer msg_%s was deleted while it was generated", self.id)
            except Exception:  # e.g. deleted meanwhile; the client has its answer already
                log.exception("could not store the answer in conversation %s", self.conversation.id)

    def _append(self, text: str, status: str) -> int:
        c = self.conversation
        message = conversations.append(
            c.db,
            c.user,
            c.id,
            "assistant",
            text,
            status=status,
            model=self.model,
            sources=self.sources,
            images=self.images,
        )
        return message.id
