"""The FastAPI application: models loaded once at start, routes, OpenAI-shaped errors."""

from contextlib import asynccontextmanager

from fastapi import FastAPI
from starlette.concurrency import run_in_threadpool

from omnicoach import __version__
from omnicoach.config import Settings
from omnicoach.models import ModelRegistry
from omnicoach.server import routes_openai
from omnicoach.server.body_limit import BodySizeLimit
from omnicoach.server.errors import install_error_handlers
from omnicoach.server.generation_runner import GenerationRunner
from omnicoach.threads import apply_threads


def create_app(settings: Settings) -> FastAPI:
    @asynccontextmanager
    async def lifespan(app: FastAPI):
        apply_threads(settings.threads)
        registry = ModelRegistry(settings)
        # Load the defaults before taking traffic, so the first request is not the slow one.
        await run_in_threadpool(registry.chat)
        await run_in_threadpool(registry.embedder)
        app.state.registry = registry
        app.state.runner = GenerationRunner(
            settings.max_concurrent_generations,
            settings.max_waiting_generations,
            settings.retry_after_seconds,
        )
        yield
        app.state.runner.shutdown()

    app = FastAPI(
        title="omnicoach",
        version=__version__,
        summary="A private, self-hosted yoga and fitness assistant with an OpenAI-compatible API.",
        lifespan=lifespan,
    )
    app.state.settings = settings
    install_error_handlers(app)
    app.include_router(routes_openai.router)
    app.add_middleware(BodySizeLimit, max_bytes=settings.max_request_bytes)

    @app.get("/health", tags=["service"])
    def health() -> dict:
        """Liveness, and how many generations are running and waiting."""
        return {"status": "ok", "version": __version__, "generations": app.state.runner.stats()}

    return app
