"""Bundles' label schemas by tag; reviews that judged the scorecard.

What produced each prediction (a bundle's label schema, by tag), and whether a review judged the scorecard (its
verdicts, even none, replace the earlier ones: the score of record).

Revision ID: 0002
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "models",
        sa.Column("tag", sa.String(length=200), nullable=False),
        sa.Column("schema_name", sa.String(length=100), nullable=False),
        sa.Column("label_schema", sa.JSON(), nullable=False),
        sa.Column("added", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("tag"),
    )
    # NULL in reviews saved before: judged where the review has verdict rows (serving/store/history.py reads it so).
    op.add_column("reviews", sa.Column("scorecard_judged", sa.Boolean(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("reviews") as batch:
        batch.drop_column("scorecard_judged")
    op.drop_table("models")
