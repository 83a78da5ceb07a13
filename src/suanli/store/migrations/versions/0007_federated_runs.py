"""federated runs: a job's kind, the run a part belongs to, its progress, the phase it ends
in; the members whose federated runs may train on a dataset

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-29
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("jobs") as batch:
        batch.add_column(sa.Column("kind", sa.String(20), server_default="batch", nullable=False))
        batch.add_column(sa.Column("run", sa.String(64), nullable=True))
        batch.add_column(sa.Column("progress", sa.JSON(), nullable=True))
        batch.add_column(sa.Column("concluded", sa.String(20), nullable=True))
    op.create_index("ix_jobs_kind_phase", "jobs", ["kind", "phase"])
    op.add_column("datasets", sa.Column("federated_with", sa.JSON(), nullable=True))
    op.create_index("ix_jobs_run", "jobs", ["run"])


def downgrade() -> None:
    op.drop_column("datasets", "federated_with")
    op.drop_index("ix_jobs_run", "jobs")
    op.drop_index("ix_jobs_kind_phase", "jobs")
    with op.batch_alter_table("jobs") as batch:
        batch.drop_column("concluded")
        batch.drop_column("progress")
        batch.drop_column("run")
        batch.drop_column("kind")
