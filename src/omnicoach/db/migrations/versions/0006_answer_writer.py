"""An answer that streams records the server writing it and when it last saved:
messages.writer, messages.saved_at (both nullable), and an index on messages.status so the
servers' sweep for answers whose server died reads only the "generating" ones.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-30

"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | Sequence[str] | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("messages", sa.Column("writer", sa.String(length=255), nullable=True))
    op.add_column("messages", sa.Column("saved_at", sa.Float(), nullable=True))
    op.create_index("ix_messages_status", "messages", ["status"])


def downgrade() -> None:
    op.drop_index("ix_messages_status", table_name="messages")
    with op.batch_alter_table("messages") as batch:
        batch.drop_column("saved_at")
        batch.drop_column("writer")
