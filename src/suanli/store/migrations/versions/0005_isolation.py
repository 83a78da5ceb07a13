"""tokens, sessions, job secrets, dataset paths

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-29
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BIGINT_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "tokens",
        sa.Column("id", BIGINT_ID, primary_key=True, autoincrement=True),
        sa.Column("user", sa.String(64), sa.ForeignKey("users.name"), nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False, unique=True),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.Column("expires_at", sa.Float(), nullable=True),
        sa.Column("revoked_at", sa.Float(), nullable=True),
    )
    op.create_index("ix_tokens_user", "tokens", ["user"])
    # every user keeps the token it had
    op.execute(
        'INSERT INTO tokens ("user", sha256, created_at) '
        "SELECT name, token_sha256, created_at FROM users"
    )
    with op.batch_alter_table("users") as batch:
        batch.drop_column("token_sha256")
    op.create_table(
        "sessions",
        sa.Column("id_sha256", sa.String(64), primary_key=True),
        sa.Column("user", sa.String(64), sa.ForeignKey("users.name"), nullable=False),
        sa.Column("csrf", sa.String(64), nullable=False),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.Column("expires_at", sa.Float(), nullable=False),
    )
    op.create_index("ix_sessions_user", "sessions", ["user"])
    op.add_column("jobs", sa.Column("secrets", sa.Text(), nullable=True))
    op.add_column("datasets", sa.Column("path", sa.String(500), server_default="", nullable=False))


def downgrade() -> None:
    op.drop_column("datasets", "path")
    op.drop_column("jobs", "secrets")
    op.drop_index("ix_sessions_user", "sessions")
    op.drop_table("sessions")
    with op.batch_alter_table("users") as batch:
        batch.add_column(sa.Column("token_sha256", sa.String(64), nullable=True))
    op.execute(
        "UPDATE users SET token_sha256 = (SELECT sha256 FROM tokens "
        'WHERE tokens."user" = users.name ORDER BY id DESC LIMIT 1)'
    )
    op.drop_index("ix_tokens_user", "tokens")
    op.drop_table("tokens")
