"""The HTTP server: OpenAI-compatible /v1 routes (more domain routes in later issues)."""

from omnicoach.server.app import create_app

__all__ = ["create_app"]
