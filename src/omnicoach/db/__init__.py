"""Persistence: SQLAlchemy tables, Alembic migrations, the Database handle."""

from omnicoach.db.database import Database, owned

__all__ = ["Database", "owned"]
