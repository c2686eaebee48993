"""The first fleet store: hosts, distinct capabilities and their models, host types, devices, claims.

Revision ID: 0001
Revises:
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "hosts",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("name", sa.String(255), nullable=False, unique=True),
        sa.Column("kernel", sa.String(255)),
        sa.Column("published", sa.Float, nullable=False),
        sa.Column("warnings", sa.Text, nullable=False),
    )
    op.create_table(
        "capabilities",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("digest", sa.String(64), nullable=False, unique=True),
        sa.Column("device_api", sa.String(32), nullable=False),
        sa.Column("type_id", sa.String(255), nullable=False),
        sa.Column("api_key", sa.String(1024), nullable=False),
        sa.Column("major", sa.Integer, nullable=False),
        sa.Column("minor", sa.Integer, nullable=False),
        sa.Column("bugfix", sa.Integer, nullable=False),
        sa.Column("confidence", sa.String(16), nullable=False),
        sa.Column("document", sa.Text, nullable=False),
        sa.Column("types", sa.Integer, nullable=False),
        sa.Column("hosts", sa.Integer, nullable=False),
    )
    op.create_index("ix_capabilities_narrow", "capabilities", ["device_api", "api_key", "major", "minor"])
    op.create_table(
        "capability_models",
        sa.Column("capability_id", sa.Integer, sa.ForeignKey("capabilities.id", ondelete="CASCADE"), primary_key=True),
        sa.Column("model", sa.String(255), primary_key=True),
    )
    op.create_index("ix_capability_models_model", "capability_models", ["model"])
    op.create_table(
        "host_types",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("host_id", sa.Integer, sa.ForeignKey("hosts.id", ondelete="CASCADE"), nullable=False),
        sa.Column("parent", sa.String(255), nullable=False),
        sa.Column("type_id", sa.String(255), nullable=False),
        sa.Column("capability_id", sa.Integer, sa.ForeignKey("capabilities.id"), nullable=False),
        sa.Column("available", sa.Integer),
        sa.UniqueConstraint("host_id", "parent", "type_id", name="uq_host_types_key"),
    )
    op.create_index("ix_host_types_capability", "host_types", ["capability_id", "available", "host_id"])
    op.create_table(
        "devices",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("host_id", sa.Integer, sa.ForeignKey("hosts.id", ondelete="CASCADE"), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("name", sa.String(255), nullable=False),
        sa.Column("parent", sa.String(255)),
        sa.Column("type_id", sa.String(255)),
        sa.Column("descriptor", sa.Text),
    )
    op.create_index("ix_devices_host", "devices", ["host_id"])
    op.create_table(
        "claims",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("host", sa.String(255), nullable=False),
        sa.Column("parent", sa.String(255), nullable=False),
        sa.Column("type_id", sa.String(255), nullable=False),
        sa.Column("created", sa.Float, nullable=False),
        sa.Column("expires", sa.Float, nullable=False),
        sa.Column("holder", sa.String(255)),
        sa.Column("source", sa.Text),
    )
    op.create_index("ix_claims_key", "claims", ["host", "parent", "type_id", "expires"])


def downgrade() -> None:
    for table in ("claims", "devices", "host_types", "capability_models", "capabilities", "hosts"):
        op.drop_table(table)
