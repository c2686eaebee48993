"""The tables Alembic's migrations make are the tables the code uses (devmig.fleet.schema), on both databases."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect

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


def test_the_upgrade_from_0001_keeps_the_hosts_and_dates_them(store_url: str) -> None:
    """A store of the previous head, with the lab published: after the upgrade every host reads back as it was,
    last seen when it was published, at generation 1; its first publish moves it to 2 (no digest to compare
    with), the next identical one keeps 2. Down again to 0001 and back up works too."""
    from tests.fleet.lab import lab_records

    records = lab_records()
    with FleetStore.open(store_url) as store:
        for index, record in enumerate(records):
            store.publish(record, now=1000.0 + index)
        before = {h.name: h for h in store.hosts()}
        store.migrate("0001", down=True)
        with store.engine.connect() as conn:
            assert MigrationContext.configure(conn).get_current_revision() == "0001"
            columns = {c["name"] for c in inspect(conn).get_columns("hosts")}
        assert columns == {"id", "name", "kernel", "published", "warnings"}
    with FleetStore.open(store_url) as store:  # opening upgrades
        with store.engine.connect() as conn:
            assert MigrationContext.configure(conn).get_current_revision() == schema.HEAD
        after = {h.name: h for h in store.hosts()}
        assert after.keys() == before.keys()
        for name, host in after.items():
            assert (host.last_seen, host.generation) == (host.published, 1) == (before[name].published, 1)
            assert (host.types, host.devices, host.kernel, host.warnings) == (
                before[name].types,
                before[name].devices,
                before[name].kernel,
                before[name].warnings,
            )
        assert store.publish(records[0], now=2000.0).generation == 2
        assert store.publish(records[0], now=2001.0).generation == 2
        assert store.place(records[0].devices[0].descriptor, now=2001.0, stale_after=600).stale_after == 600  # type: ignore[arg-type]
