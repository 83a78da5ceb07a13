"""node health

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-23
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("nodes", sa.Column("health", sa.String(20), server_default="up", nullable=False))
    op.add_column("nodes", sa.Column("health_reason", sa.String(300), nullable=True))
    op.add_column("nodes", sa.Column("health_since", sa.Float(), nullable=True))


def downgrade() -> None:
    op.drop_column("nodes", "health_since")
    op.drop_column("nodes", "health_reason")
    op.drop_column("nodes", "health")
