"""pending plans: the changes an agent proposed over a scope and has not submitted yet

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-02 06:30:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "drafts",
        sa.Column("scope", sa.String(length=4096), nullable=False),
        sa.Column("owner", sa.String(length=200), nullable=False),
        sa.Column("operations", sa.Text(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("scope", "owner"),
    )


def downgrade() -> None:
    op.drop_table("drafts")
