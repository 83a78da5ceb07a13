"""the hub: datasets resident at sites

Revision ID: 0010
Revises: 0009
Create Date: 2026-11-29
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("hub_repos", sa.Column("resident_sites", sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("hub_repos") as batch:
        batch.drop_column("resident_sites")
