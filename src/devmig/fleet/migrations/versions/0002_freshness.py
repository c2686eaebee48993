"""Freshness: each host's last sign of life (last_seen), its inventory generation and the digest of its inventory.

Existing hosts were last seen when they last published (the only sign of life the previous schema kept), are at
generation 1 (one inventory published), and have no digest: their next publish writes every row and one, and moves
the generation to 2 even if nothing changed.

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("hosts") as batch:
        batch.add_column(sa.Column("last_seen", sa.Float))
        batch.add_column(sa.Column("generation", sa.Integer, nullable=False, server_default="0"))
        batch.add_column(sa.Column("inventory", sa.String(64)))
    op.execute("UPDATE hosts SET last_seen = published, generation = 1")
    op.create_index("ix_hosts_last_seen", "hosts", ["last_seen"])


def downgrade() -> None:
    op.drop_index("ix_hosts_last_seen", table_name="hosts")
    with op.batch_alter_table("hosts") as batch:
        batch.drop_column("inventory")
        batch.drop_column("generation")
        batch.drop_column("last_seen")
