"""the hub: repos, commits with their files, branches and tags

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-29
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BIGINT_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "hub_repos",
        sa.Column("id", BIGINT_ID, primary_key=True, autoincrement=True),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("member", sa.String(64), sa.ForeignKey("members.id"), nullable=False),
        sa.Column("name", sa.String(96), nullable=False),
        sa.Column("visibility", sa.String(16), nullable=False),
        sa.Column("shared_with", sa.JSON(), nullable=False),
        sa.Column("created_by", sa.String(64), nullable=False),
        sa.Column("created_at", sa.Float(), nullable=False),
    )
    op.create_index("ux_hub_repos_name", "hub_repos", ["kind", "member", "name"], unique=True)
    op.create_table(
        "hub_commits",
        sa.Column("sha", sa.String(40), primary_key=True),
        sa.Column("repo", BIGINT_ID, sa.ForeignKey("hub_repos.id"), nullable=False),
        sa.Column("parent", sa.String(40), nullable=True),
        sa.Column("summary", sa.Text(), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("author", sa.String(64), nullable=False),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.Column("job", sa.String(64), nullable=True),
    )
    op.create_index("ix_hub_commits_repo", "hub_commits", ["repo", "created_at"])
    op.create_table(
        "hub_files",
        sa.Column("commit", sa.String(40), sa.ForeignKey("hub_commits.sha"), primary_key=True),
        sa.Column("path", sa.String(1024), primary_key=True),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("sha1", sa.String(40), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
    )
    op.create_index("ix_hub_files_sha256", "hub_files", ["sha256"])
    op.create_table(
        "hub_refs",
        sa.Column("repo", BIGINT_ID, sa.ForeignKey("hub_repos.id"), primary_key=True),
        sa.Column("kind", sa.String(8), primary_key=True),
        sa.Column("name", sa.String(128), primary_key=True),
        sa.Column("commit", sa.String(40), sa.ForeignKey("hub_commits.sha"), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("hub_refs")
    op.drop_index("ix_hub_files_sha256", "hub_files")
    op.drop_table("hub_files")
    op.drop_index("ix_hub_commits_repo", "hub_commits")
    op.drop_table("hub_commits")
    op.drop_index("ux_hub_repos_name", "hub_repos")
    op.drop_table("hub_repos")
