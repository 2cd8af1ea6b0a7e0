"""Rule counts per prediction and per reviewed call: the month report's 主要问题 ranks rules, not items.

How often each rule deducted on a prediction's scorecard, and on each reviewed call's score of record (误判 gone,
漏扣 counted as rule ``missed``), in columns, filled for the predictions and reviews a store already holds.

Revision ID: 0004
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "deduction_counts",
        sa.Column("prediction_id", sa.Integer(), nullable=False),
        sa.Column("item", sa.String(length=100), nullable=False),
        sa.Column("rule", sa.String(length=100), nullable=False),
        sa.Column("title", sa.String(length=200), nullable=False),
        sa.Column("hits", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(["prediction_id"], ["predictions.id"]),
        sa.PrimaryKeyConstraint("prediction_id", "item", "rule"),
    )
    op.create_table(
        "reviewed_deduction_counts",
        sa.Column("call_id", sa.String(length=200), nullable=False),
        sa.Column("item", sa.String(length=100), nullable=False),
        sa.Column("rule", sa.String(length=100), nullable=False),
        sa.Column("title", sa.String(length=200), nullable=False),
        sa.Column("hits", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(["call_id"], ["review_calls.call_id"]),
        sa.PrimaryKeyConstraint("call_id", "item", "rule"),
    )
    from callqa.serving.store.backfill import fill_deduction_counts

    fill_deduction_counts(op.get_bind())


def downgrade() -> None:
    op.drop_table("reviewed_deduction_counts")
    op.drop_table("deduction_counts")
