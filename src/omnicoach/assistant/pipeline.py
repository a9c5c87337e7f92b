"""The assistant: one conversation pipeline behind every door (HTTP API, page, terminal chat,
job worker). A turn transcribes spoken parts, decodes pictures, brings in a stored
conversation's history, routes a request for a picture to the image generator, answers the
rest (assistant/answering.py) and stores both new turns — as a stream of events
(assistant/events.py) that each door turns into its own form.

    assistant = Assistant(settings, registry, db=db, files=files)
    for event in assistant.turn(TurnRequest([Message.text("user", "How do I do crow pose?")])):
        ...

Everything here is blocking: the server runs a turn on a worker thread. How a turn waits for
its share of the machine (a generation slot, a transcription slot) is the door's business:
`Gates` holds two context-manager factories, which do nothing unless the door sets them.
"""

import threading
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass

from omnicoach.assistant import events
from omnicoach.assistant.answering import Answering, Plan
from omnicoach.assistant.conversation import StoredConversation
from omnicoach.assistant.drawing import (
    IMAGE_GENERATION_MISSING,
    PICTURE_WORDS,
    ROUTER_NAME,
    chat_drawing_size,
    draw,
    drawing_prompt,
)
from omnicoach.assistant.pictures import PictureStore
from omnicoach.assistant.replies import FixedReply
from omnicoach.assistant.request import Picture, Text, TurnRequest
from omnicoach.assistant.speech import transcribe_parts
from omnicoach.errors import ModelFileError
from omnicoach.knowledge.library import Knowledge
from omnicoach.knowledge.pictures import PictureNamer
from omnicoach.models.prompt_router import IMAGE, Route

# Longer text is not a prompt a person typed; the router reads 128 tokens of it anyway.
MAX_ROUTED_CHARS = 8000


@dataclass
class Gates:
    generation: Callable[[], AbstractContextManager] = nullcontext
    transcription: Callable[[], AbstractContextManager] = nullcontext


class Assistant:
    """SETTINGS and REGISTRY (the models); DB and FILES (a FileStore) keep conversations,
    pictures and drawings — without them a turn keeps nothing and takes no file ids;
    LINK_READER reads a question's links (None: links are not read)."""

    def __init__(self, settings, registry, db=None, files=None, link_reader=None, gates=None):
        self.settings, self.registry = settings, registry
        self.db, self.files, self.link_reader = db, files, link_reader
        self.gates = gates or Gates()
        self.pictures = PictureStore(
            files, db, settings.max_image_pixels, settings.max_upload_bytes
        )
        self._knowledge: Knowledge | None = None
        self._namer: PictureNamer | None = None
        self._lock = threading.Lock()

    def knowledge(self) -> Knowledge:
        """The knowledge base with its names and passage index, loaded on first use."""
        embedder = self.registry.embedder()
        with self._lock:
            if self._knowledge is None:
                self._knowledge = Knowledge(embedder, self.settings.model_cache_dir)
            return self._knowledge

    def picture_namer(self) -> PictureNamer:
        vision, names = self.registry.vision(), self.knowledge().names
        with self._lock:
            if self._namer is None:
                self._namer = PictureNamer(vision, names)
            return self._namer

    def turn(self, request: TurnRequest) -> "Turn":
        return Turn(self, request)

    def draw(self, user: str, **settings):
        """Draw as SETTINGS say (ImageGenerator.generate's; steps default to the setting's)
        and keep the pictures as USER's files."""
        generator = self.registry.image_generator()
        if settings.get("steps") is None:
            settings["steps"] = self.settings.image_steps
        return draw(generator, self.files, self.db, user, **settings)


class Turn:
    """One answer as events; iterate it once. cancel() (from any thread) stops the answer
    within a token, and the stored answer ends "incomplete"."""

    def __init__(self, assistant: Assistant, request: TurnRequest):
        self.assistant, self.request = assistant, request
        self._cancelled = threading.Event()
        self._reply = None
        self._conversation: StoredConversation | None = None

    def __iter__(self) -> Iterator[events.Event]:
        return self._events()

    def cancel(self) -> None:
        self._cancelled.set()
        if self._reply is not None:
            self._reply.cancel()
        if self._conversation is not None:  # stored as it was when the client left
            self._conversation.cut_short()

    def _events(self) -> Iterator[events.Event]:
        assistant, request = self.assistant, self.request
        messages, warnings = self._read_messages()
        conversation = None
        if request.conversation_id is not None:
            conversation = StoredConversation(
                assistant.db,
                request.user,
                request.conversation_id,
                store_pictures=lambda images: assistant.pictures.save(request.user, images),
            )
            messages = conversation.with_history(messages)
            self._conversation = conversation
        llm = assistant.registry.chat(request.model)
        route = self._route(messages)
        if route is not None:
            yield events.Routed(route.label, route.confidence)
        if route is not None and route.label == IMAGE:
            plan = self._drawing(messages, llm)
        else:
            plan = self._answering(llm).plan(messages)
        for text in [*warnings, *plan.warnings]:
            yield events.Notice(text)
        if plan.sources:
            yield events.Sources(plan.sources)
        if plan.images:
            yield events.Pictures(plan.images)
        yield from self._answer(plan, conversation)

    def _answering(self, llm) -> Answering:
        settings, request = self.assistant.settings, self.request
        grounding = settings.rag if request.grounding is None else request.grounding
        mode = request.answer_mode or settings.answer_mode
        return Answering(self.assistant, request, llm, grounding, mode)

    def _answer(self, plan: Plan, conversation) -> Iterator[events.Event]:
        """Start the reply (a generation takes a slot first), store the question, stream the
        answer — stored as it streams — then its usage."""
        reply = self._reply = plan.reply
        if self._cancelled.is_set():
            reply.cancel()
        with self.assistant.gates.generation() if plan.generated else nullcontext():
            try:
                # A remote LLM's answer starts here: an unreachable or refusing remote fails
                # the turn before anything is stored (models/remote_llm.py).
                if (connect := getattr(reply, "connect", None)) is not None:
                    connect()
                if conversation is not None:  # stored before the answer starts: never lost
                    conversation.save_question()
            except BaseException:
                reply.close()
                raise
            yield events.Answering(plan.model, self.request.conversation_id)
            deltas = iter(reply)
            if conversation is not None:
                deltas = conversation.recorded(deltas, plan.model, plan.sources, plan.images)
            try:
                for delta in deltas:
                    yield events.TextDelta(delta)
            finally:
                reply.close()
        yield events.Usage(reply.prompt_tokens, reply.completion_tokens)
        yield events.Done(reply.finish_reason or "stop")

    # --- the steps before the answer ----------------------------------------------------

    def _read_messages(self) -> tuple[list[dict], list[str]]:
        """The request's messages as the models take them ({"role", "content"}, with the
        decoded "pictures" of a user message): spoken parts transcribed, pictures decoded."""
        assistant, request = self.assistant, self.request
        settings = assistant.settings
        warnings = transcribe_parts(
            request.messages,
            assistant.registry.speech_to_text,
            settings.max_audio_seconds,
            assistant.gates.transcription,
            correct=lambda text: assistant.knowledge().spoken_names.correct(text)[0],
        )
        messages = []
        for message in request.messages:
            texts = [part.text for part in message.parts if isinstance(part, Text)]
            plain = {"role": message.role, "content": "\n".join(texts)}
            pictures = [
                assistant.pictures.decode(part.part, part.where, request.user)
                for part in message.parts
                if isinstance(part, Picture)
            ]
            if pictures:
                plain["pictures"] = pictures
            messages.append(plain)
        return messages, warnings

    def _route(self, messages: list[dict]):
        """The router's label for the last message when it is the user's words alone; None
        when routing is off. A message with a picture is a question about it; a message that
        does not speak of a picture is not a picture request, whatever the router says
        (drawing.PICTURE_WORDS)."""
        if not self.assistant.settings.chat_routing or not messages:
            return None
        last = messages[-1]
        if last["role"] != "user" or not last["content"].strip() or last.get("pictures"):
            return None
        route = self.assistant.registry.router().classify(last["content"][:MAX_ROUTED_CHARS])
        if route.label == IMAGE and not PICTURE_WORDS.search(last["content"]):
            return Route("conversation", route.scores.get("conversation", 0.0), route.scores)
        return route

    def _drawing(self, messages: list[dict], llm) -> Plan:
        """The picture the last message asks for, drawn and kept, and the answer that
        carries it (Plan.images: the stored files' ids)."""
        assistant, request = self.assistant, self.request

        def said(text: str) -> FixedReply:  # a notice about the drawing: never cut
            return FixedReply(text, llm.tokenizer, None)

        try:
            generator = assistant.registry.image_generator()
        except ModelFileError:
            return Plan(said(IMAGE_GENERATION_MISSING), ROUTER_NAME, False)
        prompt = drawing_prompt(messages[-1]["content"], generator, assistant.knowledge().names)
        size = chat_drawing_size(generator)
        with assistant.gates.generation():
            drawn = assistant.draw(request.user, prompt=prompt, size=size)
        text = f"Here is a picture for “{prompt.strip()}” (seed {drawn.seed})."
        images = [image.file_id for image in drawn.images]
        return Plan(said(text), drawn.model, False, images=images)
