"""双评 (double review): a call's state — waiting for a second independent review, agreed, differs, adjudicated.

Revision ID: 0010
"""

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("review_calls", sa.Column("double_review", sa.String(length=12), nullable=True))
    op.create_index("ix_review_calls_double_review", "review_calls", ["double_review"])


def downgrade() -> None:
    op.drop_index("ix_review_calls_double_review", table_name="review_calls")
    with op.batch_alter_table("review_calls") as batch:
        batch.drop_column("double_review")
