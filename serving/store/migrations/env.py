"""Alembic's environment for the review store: the connection is the one callqa hands over (serving/store/migrations)."""

from alembic import context

from callqa.serving.store.db import Base

connection = context.config.attributes["connection"]
context.configure(connection=connection, target_metadata=Base.metadata, render_as_batch=True)
with context.begin_transaction():
    context.run_migrations()
