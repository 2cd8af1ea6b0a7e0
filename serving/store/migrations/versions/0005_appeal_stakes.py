"""Appeal entries keep what was at stake when filed, so a reviewer's 漏扣 can be appealed too.

An agent appeals the score of record they see; a 漏扣 is on no model card, so each entry keeps its title and
points (NULL for entries filed before: read from the model's card, as then).

Revision ID: 0005
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("appeal_entries", sa.Column("title", sa.String(length=300), nullable=True))
    op.add_column("appeal_entries", sa.Column("points", sa.Float(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("appeal_entries") as batch:
        batch.drop_column("points")
        batch.drop_column("title")
