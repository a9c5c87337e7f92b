"""Persistence: SQLAlchemy tables, Alembic migrations, the Database handle."""

from omnicoach.db.database import Database

__all__ = ["Database"]
