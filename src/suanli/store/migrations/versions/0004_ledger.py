"""ledger

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-23
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BIGINT_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "ledger",
        sa.Column("seq", BIGINT_ID, primary_key=True, autoincrement=True),
        sa.Column("book", sa.String(128), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("member", sa.String(64), nullable=False),
        sa.Column("provider", sa.String(64), nullable=False),
        sa.Column("model", sa.String(64), nullable=False),
        sa.Column("devices", sa.Integer(), nullable=False),
        sa.Column("start", sa.Float(), nullable=False),
        sa.Column("end", sa.Float(), nullable=False),
        sa.Column("units", sa.Float(), nullable=False),
        sa.Column("job", sa.String(64), nullable=True),
        sa.Column("attempt", sa.Integer(), nullable=True),
        sa.Column("prev", sa.String(64), nullable=False),
        sa.Column("hash", sa.String(64), nullable=False),
    )
    op.create_index("ix_ledger_book_member_start", "ledger", ["book", "member", "start"])
    op.create_index("ix_ledger_book_provider_start", "ledger", ["book", "provider", "start"])
    op.create_index("ix_ledger_book_seq", "ledger", ["book", "seq"])
    op.create_table(
        "ledger_heads",
        sa.Column("book", sa.String(128), primary_key=True),
        sa.Column("seq", BIGINT_ID, nullable=False),
        sa.Column("hash", sa.String(64), nullable=False),
        sa.Column("capacity_until", sa.Float(), nullable=True),
        sa.Column("max_span", sa.Float(), nullable=True),
    )
    op.add_column("jobs", sa.Column("accounted_until", sa.Float(), nullable=True))


def downgrade() -> None:
    op.drop_column("jobs", "accounted_until")
    op.drop_table("ledger_heads")
    op.drop_index("ix_ledger_book_seq", "ledger")
    op.drop_index("ix_ledger_book_provider_start", "ledger")
    op.drop_index("ix_ledger_book_member_start", "ledger")
    op.drop_table("ledger")
