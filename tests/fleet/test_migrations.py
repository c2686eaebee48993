"""The tables Alembic's migrations make are the tables the code uses (devmig.fleet.schema), on both databases."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from devmig.fleet import schema
from devmig.fleet.store import FleetStore


def test_the_migrations_make_the_schema_the_code_uses(store_url: str) -> None:
    with FleetStore.open(store_url) as store, store.engine.connect() as conn:
        assert MigrationContext.configure(conn).get_current_revision() == schema.HEAD
        assert compare_metadata(MigrationContext.configure(conn), schema.metadata) == []


def test_opening_again_keeps_the_data(store_url: str) -> None:
    from tests.fleet.lab import lab_records

    with FleetStore.open(store_url) as store:
        store.publish(lab_records()[0])
    with FleetStore.open(store_url) as store:
        assert [h.name for h in store.hosts()] == ["alpha"]
