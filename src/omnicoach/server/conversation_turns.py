"""Chatting into a stored conversation: history in, both new turns out.

The user's new messages are saved before the answer starts; the answer is saved when it ends,
also when it ends early (client gone, stopped, failed): then with status "incomplete" and
whatever text was produced, so nothing the user saw is lost.
"""

import logging
from collections.abc import AsyncIterator

from omnicoach import conversations
from omnicoach.db import Database
from omnicoach.server.errors import APIError

log = logging.getLogger(__name__)


class StoredConversation:
    def __init__(self, db: Database, user: str, conversation_id: str, store_pictures=None):
        self.db, self.user, self.id = db, user, conversation_id
        self.new_turns: list[dict] = []
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
        if not self.new_turns and (not history or history[-1].role != "user"):
            raise APIError(
                400,
                "messages holds no new user turn and the conversation does not end with one",
                param="messages",
            )
        earlier = [
            {"role": m.role, "content": m.content, "image_files": m.images or []}
            for m in history
            if m.content or m.images
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

    async def recorded(
        self, deltas: AsyncIterator[str], model: str, sources: list[dict], images=None
    ):
        """Pass the deltas through, and store the answer once they end, however they end,
        with IMAGES (ids of stored files, e.g. a drawing) when given."""
        parts: list[str] = []
        finished = False
        try:
            async for delta in deltas:
                parts.append(delta)
                yield delta
            finished = True
        finally:
            status = "complete" if finished else "incomplete"
            self._save_answer("".join(parts), status, model, sources, images)

    def _save_answer(self, text, status: str, model: str, sources: list[dict], images) -> None:
        try:
            conversations.append(
                self.db,
                self.user,
                self.id,
                "assistant",
                text,
                status=status,
                model=model,
                sources=sources,
                images=images or None,
            )
        except Exception:  # e.g. deleted meanwhile; the client has its answer already
            log.exception("could not store the answer in conversation %s", self.id)
