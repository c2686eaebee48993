"""The fleet store's tables (SQLAlchemy Core). Alembic's migrations (devmig/fleet/migrations) create and change
them; this module is what the code reads and writes, and must match the newest migration (a test compares them).

Capabilities are stored once per distinct document (`digest`), however many hosts offer them: a fleet of thousands
of hosts has a few hundred distinct types, so placement checks each distinct document once and lets SQL find the
hosts. Each document keeps how many host types and hosts have it (publish maintains them), so the summary of
refusals costs a read of the documents, not a count of every host type. A host's rows are replaced whole on each
publish. Claims name their type by (host, parent, type), not by row, so they outlive a republish.
"""

from __future__ import annotations

from sqlalchemy import (
    Column,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
)

metadata = MetaData()

#: the newest migration; a store at another revision is upgraded when opened
HEAD = "0002"

hosts = Table(
    "hosts",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("name", String(255), nullable=False, unique=True),
    Column("kernel", String(255)),
    Column("published", Float, nullable=False),
    Column("warnings", Text, nullable=False, default="[]"),
    #: the last sign of life, seconds since the epoch (a publish or a heartbeat); NULL: none recorded
    Column("last_seen", Float),
    #: moved on by each publish that changed the inventory (1 after the first); a scheduler can tell an
    #: inventory it read is still the one stored
    Column("generation", Integer, nullable=False, server_default="0"),
    #: sha256 of the inventory as last published (types, free counts, devices, kernel, warnings); NULL until a
    #: publish after schema 0002 wrote it
    Column("inventory", String(64)),
    Index("ix_hosts_last_seen", "last_seen"),
)

capabilities = Table(
    "capabilities",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    #: sha256 of the document's canonical JSON (without available_instances, which belongs to a host's type)
    Column("digest", String(64), nullable=False, unique=True),
    Column("device_api", String(32), nullable=False),
    Column("type_id", String(255), nullable=False),
    #: the `api` identity as canonical JSON: identity is equality of the whole mapping
    Column("api_key", String(1024), nullable=False),
    Column("major", Integer, nullable=False),
    Column("minor", Integer, nullable=False),
    Column("bugfix", Integer, nullable=False),
    Column("confidence", String(16), nullable=False),
    Column("document", Text, nullable=False),
    #: host types with this document and hosts that have one, kept by publish: placement's summary reads these
    #: instead of counting every host type
    Column("types", Integer, nullable=False, default=0),
    Column("hosts", Integer, nullable=False, default=0),
    Index("ix_capabilities_narrow", "device_api", "api_key", "major", "minor"),
)

#: a capability's models (a type may declare several; most declare one, some none)
capability_models = Table(
    "capability_models",
    metadata,
    Column("capability_id", Integer, ForeignKey("capabilities.id", ondelete="CASCADE"), primary_key=True),
    Column("model", String(255), primary_key=True),
    Index("ix_capability_models_model", "model"),
)

host_types = Table(
    "host_types",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("host_id", Integer, ForeignKey("hosts.id", ondelete="CASCADE"), nullable=False),
    Column("parent", String(255), nullable=False),
    Column("type_id", String(255), nullable=False),
    Column("capability_id", Integer, ForeignKey("capabilities.id"), nullable=False),
    #: free instances when published; NULL when the host could not tell
    Column("available", Integer),
    UniqueConstraint("host_id", "parent", "type_id", name="uq_host_types_key"),
    Index("ix_host_types_capability", "capability_id", "available", "host_id"),
)

devices = Table(
    "devices",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("host_id", Integer, ForeignKey("hosts.id", ondelete="CASCADE"), nullable=False),
    Column("kind", String(16), nullable=False),
    Column("name", String(255), nullable=False),
    Column("parent", String(255)),
    Column("type_id", String(255)),
    Column("descriptor", Text),
    Index("ix_devices_host", "host_id"),
)

claims = Table(
    "claims",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("host", String(255), nullable=False),
    Column("parent", String(255), nullable=False),
    Column("type_id", String(255), nullable=False),
    Column("created", Float, nullable=False),
    Column("expires", Float, nullable=False),
    #: who placed it (a scheduler's name, a request id), for people reading `devmig claim list`
    Column("holder", String(255)),
    Column("source", Text),
    Index("ix_claims_key", "host", "parent", "type_id", "expires"),
)
