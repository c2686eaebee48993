"""Alembic's environment for the fleet store: always run by devmig.fleet.store with an open connection."""

from __future__ import annotations

from alembic import context

from devmig.fleet.schema import metadata

connection = context.config.attributes["connection"]
context.configure(connection=connection, target_metadata=metadata, render_as_batch=True)
with context.begin_transaction():
    context.run_migrations()
