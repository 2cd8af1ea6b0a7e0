"""Calibration sessions (校准): a lead's calls and reviewers, and each reviewer's blind labels.

Revision ID: 0009
"""

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "calibration_sessions",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("title", sa.String(length=200), nullable=False),
        sa.Column("created_by", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("closed_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_table(
        "calibration_members",
        sa.Column("session_id", sa.Integer(), nullable=False),
        sa.Column("reviewer", sa.String(length=64), nullable=False),
        sa.ForeignKeyConstraint(["session_id"], ["calibration_sessions.id"]),
        sa.PrimaryKeyConstraint("session_id", "reviewer"),
    )
    op.create_table(
        "calibration_calls",
        sa.Column("session_id", sa.Integer(), nullable=False),
        sa.Column("call_id", sa.String(length=200), nullable=False),
        sa.ForeignKeyConstraint(["call_id"], ["review_calls.call_id"]),
        sa.ForeignKeyConstraint(["session_id"], ["calibration_sessions.id"]),
        sa.PrimaryKeyConstraint("session_id", "call_id"),
    )
    op.create_table(
        "calibration_labels",
        sa.Column("session_id", sa.Integer(), nullable=False),
        sa.Column("call_id", sa.String(length=200), nullable=False),
        sa.Column("reviewer", sa.String(length=64), nullable=False),
        sa.Column("head", sa.String(length=100), nullable=False),
        sa.Column("label", sa.String(length=100), nullable=False),
        sa.Column("scored_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["session_id"], ["calibration_sessions.id"]),
        sa.PrimaryKeyConstraint("session_id", "call_id", "reviewer", "head"),
    )


def downgrade() -> None:
    for table in ("calibration_labels", "calibration_calls", "calibration_members", "calibration_sessions"):
        op.drop_table(table)
