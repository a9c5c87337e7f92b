"""Message ids are never reused: SQLite AUTOINCREMENT on messages.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-22

"""

from collections.abc import Sequence

from alembic import op

revision: str = "0002"
down_revision: str | Sequence[str] | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # SQLite can only change this by copying the table; other databases use sequences, which
    # never reuse ids, so there is nothing to do.
    if op.get_bind().dialect.name == "sqlite":
        with op.batch_alter_table(
            "messages", recreate="always", table_kwargs={"sqlite_autoincrement": True}
        ):
            pass


def downgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        with op.batch_alter_table(
            "messages", recreate="always", table_kwargs={"sqlite_autoincrement": False}
        ):
            pass
