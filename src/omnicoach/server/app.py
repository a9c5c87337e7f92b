"""The FastAPI application: models loaded once at start, routes, OpenAI-shaped errors."""

import asyncio
import logging
from contextlib import asynccontextmanager

from fastapi import Depends, FastAPI
from starlette.concurrency import run_in_threadpool
from starlette.middleware.cors import CORSMiddleware

from omnicoach import __version__, conversations
from omnicoach.assistant import Assistant, Gates
from omnicoach.config import Settings
from omnicoach.db import Database
from omnicoach.files import FileStore
from omnicoach.jobs.queue import JobQueue
from omnicoach.links import LinkReader
from omnicoach.memory import release_free_memory
from omnicoach.models import ModelRegistry
from omnicoach.models.remote_llm import RemoteLLMError
from omnicoach.server import (
    routes_audio,
    routes_classify,
    routes_conversations,
    routes_files,
    routes_images,
    routes_jobs,
    routes_openai,
    routes_web,
)
from omnicoach.server.auth import current_user
from omnicoach.server.body_limit import BodySizeLimit
from omnicoach.server.errors import ERROR_RESPONSES, install_error_handlers
from omnicoach.server.rate_limit import RateLimiter
from omnicoach.server.turn_runner import Admission, TurnRunner, blocking_slot
from omnicoach.threads import apply_threads
from omnicoach.users import register_keys

log = logging.getLogger(__name__)
RELEASE_MEMORY_EVERY_S = 5.0


def create_app(settings: Settings) -> FastAPI:
    @asynccontextmanager
    async def lifespan(app: FastAPI):
        apply_threads(settings.threads)
        db = Database(settings.database)
        await run_in_threadpool(db.migrate)
        # Answers left "generating" by a server that died mid-stream: keep them, "incomplete";
        # now, and every minute for servers that die while this one runs (a shared database).
        await run_in_threadpool(conversations.recover_interrupted, db)
        await run_in_threadpool(register_keys, db, settings.env_api_keys)
        app.state.db = db
        app.state.files = FileStore(settings)
        app.state.job_queue = JobQueue(settings)
        registry = ModelRegistry(settings)
        # Load the defaults before taking traffic, so the first request is not the slow one.
        try:
            await run_in_threadpool(registry.chat)
        except RemoteLLMError as exc:  # chat is 503 until the remote answers; the rest works
            log.warning("chat is unavailable until the remote LLM answers: %s", exc)
        await run_in_threadpool(registry.embedder)
        await run_in_threadpool(registry.speech_to_text)
        await run_in_threadpool(registry.text_to_speech)
        if settings.chat_routing:
            await run_in_threadpool(registry.router)
        app.state.link_reader = LinkReader(settings)  # a bad allowlist fails here, at start
        app.state.registry = registry
        app.state.runner = TurnRunner(
            settings.max_concurrent_generations,
            settings.max_waiting_generations,
            settings.retry_after_seconds,
            threads=_turn_threads(settings),
        )
        app.state.transcriptions = Admission(
            "transcriptions",
            settings.max_concurrent_transcriptions,
            settings.max_waiting_transcriptions,
            settings.retry_after_seconds,
        )
        loop = asyncio.get_running_loop()
        gates = Gates(
            generation=blocking_slot(app.state.runner, loop),
            transcription=blocking_slot(app.state.transcriptions, loop),
        )
        app.state.assistant = Assistant(
            settings, registry, db, app.state.files, app.state.link_reader, gates
        )
        if settings.rag:
            await run_in_threadpool(app.state.assistant.knowledge)
        background = [  # once started: a failed start leaves nothing running
            asyncio.create_task(
                _every(conversations.RECOVERY_SWEEP_S, conversations.recover_interrupted, db)
            ),
            # Freed tensors' pages back to the OS, so memory stays bounded (memory.py).
            asyncio.create_task(_every(RELEASE_MEMORY_EVERY_S, release_free_memory)),
        ]
        yield
        for task in background:
            task.cancel()
        app.state.runner.shutdown()
        db.close()

    app = FastAPI(
        title="omnicoach",
        version=__version__,
        summary="A private, self-hosted yoga and fitness assistant with an OpenAI-compatible API.",
        lifespan=lifespan,
        responses=ERROR_RESPONSES,  # every error is OpenAI's body (server/errors.py)
    )
    app.openapi = _openapi_3_1(app.openapi)
    app.state.settings = settings
    app.state.rate_limiter = RateLimiter(settings.rate_limit_per_minute)  # per key: auth.py
    install_error_handlers(app)
    # Every route but /health and the docs needs the caller's key while auth is on.
    authenticated = [Depends(current_user)]
    app.include_router(routes_openai.router, dependencies=authenticated)
    app.include_router(routes_audio.router, dependencies=authenticated)
    app.include_router(routes_classify.router, dependencies=authenticated)
    app.include_router(routes_conversations.router, dependencies=authenticated)
    app.include_router(routes_files.router, dependencies=authenticated)
    app.include_router(routes_images.router, dependencies=authenticated)
    app.include_router(routes_jobs.router, dependencies=authenticated)
    routes_web.mount_web(app)  # the chat page: no key needed; its API calls carry one
    app.add_middleware(BodySizeLimit, max_bytes=settings.max_request_bytes)
    if settings.cors_origins:
        # Closed unless configured: without the middleware no response carries CORS headers.
        # Added last, so it is outermost: preflights are answered before auth, and every
        # answer (413s and 429s too) carries the headers a browser needs to read it.
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_origins,
            allow_methods=["GET", "POST", "PATCH", "DELETE", "OPTIONS"],
            # Any request header: the official clients add their own (X-Stainless-*). No
            # cookies are used (keys travel in Authorization), so credentials stay off.
            allow_headers=["*"],
            expose_headers=["Retry-After"],
            max_age=600,
        )

    @app.get("/health", tags=["service"])
    def health() -> dict:
        """Liveness; generations and transcriptions running and waiting; the default chat
        model's batch engine (KV slots, decode steps, prompt tokens computed and reused from the
        prefix cache); chat_error while a remote LLM (llm_url) cannot be reached."""
        try:
            llm, chat_error = app.state.registry.chat(), None
        except RemoteLLMError as exc:  # the server is alive; its chat is not, and says why
            llm, chat_error = None, str(exc)
        engine = getattr(llm, "engine", None)
        return {
            "status": "ok",
            "version": __version__,
            "generations": app.state.runner.stats(),
            "transcriptions": app.state.transcriptions.stats(),
            "engine": engine.stats() if engine is not None else None,
            **({"chat_error": chat_error} if chat_error else {}),
        }

    return app


def _turn_threads(settings: Settings) -> int:
    """A thread for every turn that may generate, wait for a slot or transcribe at once."""
    return (
        settings.max_concurrent_generations
        + settings.max_waiting_generations
        + settings.max_concurrent_transcriptions
        + settings.max_waiting_transcriptions
    )


async def _every(seconds: float, function, *args) -> None:
    """FUNCTION(*ARGS) on a worker thread every SECONDS while the server runs."""
    while True:
        await asyncio.sleep(seconds)
        try:
            await run_in_threadpool(function, *args)
        except Exception:  # e.g. the database is busy or away: the next round tries again
            log.warning("%s failed; again in %s s", function.__name__, seconds, exc_info=True)


def _openapi_3_1(make_schema):
    """FastAPI describes an event stream's events with `itemSchema`, a keyword of OpenAPI 3.2
    that the 3.1 document it writes may not hold (validators refuse the document): keep it as
    the extension `x-itemSchema`."""

    def openapi() -> dict:
        schema = make_schema()  # cached by FastAPI: renamed once
        for operations in schema.get("paths", {}).values():
            for operation in operations.values():
                for response in operation.get("responses", {}).values():
                    for media in response.get("content", {}).values():
                        if "itemSchema" in media:
                            media["x-itemSchema"] = media.pop("itemSchema")
        return schema

    return openapi
