"""来电分析 in columns: how each call went (talk time, silence, interruptions, transfers, repeat calls, a chat's
response times, its channel), whether the model predicts it resolved and its predicted satisfaction (0..1), filled for the calls a store already holds
from their transcripts and latest predictions.

Revision ID: 0006
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

COLUMNS = (("channel", sa.String(length=50)), ("chat", sa.Boolean()), ("talk_seconds", sa.Float()),
           ("silence_seconds", sa.Float()), ("interruptions", sa.Integer()), ("transfers", sa.Integer()),
           ("repeat_call", sa.Boolean()), ("first_response", sa.Float()), ("avg_response", sa.Float()),
           ("resolved", sa.Boolean()), ("satisfaction", sa.Float()))


def upgrade() -> None:
    for name, kind in COLUMNS:
        op.add_column("review_calls", sa.Column(name, kind, nullable=True))
    from callqa.serving.store.backfill import fill_call_measures

    fill_call_measures(op.get_bind())


def downgrade() -> None:
    with op.batch_alter_table("review_calls") as batch:
        for name, _ in reversed(COLUMNS):
            batch.drop_column(name)
