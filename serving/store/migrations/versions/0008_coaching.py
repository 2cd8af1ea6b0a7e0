"""Coaching notes (辅导与表扬): a reviewed call sent to its agent with a comment, and when the agent read it.

Revision ID: 0008
"""

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "coaching",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("call_id", sa.String(length=200), nullable=False),
        sa.Column("agent_id", sa.String(length=200), nullable=False),
        sa.Column("sent_by", sa.String(length=64), nullable=False),
        sa.Column("sent_by_name", sa.String(length=200), nullable=False),
        sa.Column("sent_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("comment", sa.Text(), nullable=False),
        sa.Column("praise", sa.Boolean(), nullable=False),
        sa.Column("acknowledged_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(["call_id"], ["review_calls.call_id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_coaching_call_id", "coaching", ["call_id"])
    op.create_index("ix_coaching_agent_id", "coaching", ["agent_id"])


def downgrade() -> None:
    op.drop_index("ix_coaching_agent_id", table_name="coaching")
    op.drop_index("ix_coaching_call_id", table_name="coaching")
    op.drop_table("coaching")
