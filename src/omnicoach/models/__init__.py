"""Loading and running each model kind, and the registry of bundled defaults and overrides."""

from omnicoach.models.registry import ModelRegistry, ModelSpec

__all__ = ["ModelRegistry", "ModelSpec"]
