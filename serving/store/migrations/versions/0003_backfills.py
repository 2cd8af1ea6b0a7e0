"""Data: random key ids, and the report columns of calls stored before them.

Data, not shape: what the store used to fill on every open, done once. Keys made before ids were random get a
random id (and the reviews naming them follow); calls stored before the report columns get them (their latest
prediction, what reports count, each prediction's topics).

Revision ID: 0003
"""

from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # The functions that did this on open until now; both find nothing to do on a new store.
    from callqa.serving.store.backfill import fill_report_tables, migrate_key_ids

    bind = op.get_bind()
    migrate_key_ids(bind)
    fill_report_tables(bind)


def downgrade() -> None:
    pass  # filled data is correct under the earlier revisions too
