"""The fleet store: host inventories in SQLite (one file, the default) or PostgreSQL (a fleet), with placement and
claims.

- `publish(record)` replaces a host's rows in one transaction: readers see the old inventory or the new one.
- `place(source)` narrows in SQL (device API, identity, model or type, major, minor not older), checks each distinct
  capability document left exactly (devmig.compat.check), lets SQL find and order the hosts that have room (free
  instances less active claims), and summarises the rest by reason.
- `place(..., claim=SECONDS)` also reserves one instance of the best candidate that still has room, for that long.
  Two schedulers claiming at once never get more than the free instances: on PostgreSQL the type's row is locked
  (`FOR UPDATE SKIP LOCKED`: a row another claimer holds is skipped, not waited for); SQLite takes its database
  write lock for the claim's transaction (`BEGIN IMMEDIATE`).

URLs: `sqlite:///PATH`, `postgresql://USER@HOST/DB` (the psycopg driver), or a path. The default is `$DEVMIG_STORE`,
else `$XDG_DATA_HOME/devmig/fleet.db` (`~/.local/share/devmig/fleet.db`). The schema is created and upgraded with
Alembic when a store is opened.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
import uuid
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from functools import lru_cache
from pathlib import Path
from typing import Any, Final, cast, get_args
from urllib.parse import quote

from sqlalchemy import (
    Connection,
    Engine,
    Insert,
    Table,
    bindparam,
    create_engine,
    delete,
    event,
    func,
    insert,
    or_,
    select,
    update,
)
from sqlalchemy.engine import make_url
from sqlalchemy.exc import (
    ArgumentError,
    DBAPIError,
    InterfaceError,
    NoSuchModuleError,
    OperationalError,
    SQLAlchemyError,
)

from devmig.compat import check
from devmig.compat.rank import Rank, candidate_rank
from devmig.errors import DevmigError, InputError
from devmig.fleet import freshness, schema
from devmig.fleet.freshness import STALE_CODE
from devmig.fleet.place import (
    NO_ROOM_CODE,
    Claim,
    FleetCandidate,
    Placement,
    RefusalGroup,
    StoredIdentity,
    first_error,
    group,
    identity_reason,
)
from devmig.fleet.records import DeviceKind, DeviceRecord, FleetGauges, HostRecord, HostSeen, TypeRecord
from devmig.model.descriptor import Confidence, DeviceDescriptor, TypeCapability
from devmig.model.verdict import Verdict

ENV_STORE = "DEVMIG_STORE"
#: seconds a claim lasts unless told otherwise
CLAIM_SECONDS = 300.0
#: seconds a claim keeps trying while its only candidates are held by other claimers
CLAIM_WAIT = 10.0


#: compatible capability ids, best first, with their document, verdict and rank (free instances left aside)
Ranked = dict[int, tuple[TypeCapability, Verdict, Rank]]
#: a refused capability id with its first error (code, message)
Rejected = tuple[int, str, str]


class StoreError(DevmigError):
    """The store cannot be opened or answered with an error (names the store, never its password). `reason` says
    which: "unavailable" (no connection, or it was lost), else "database" (the database refused the statement)."""

    def __init__(self, message: str, reason: str = "database") -> None:
        super().__init__(message)
        self.reason = reason


def default_url() -> str:
    if os.environ.get(ENV_STORE):
        return os.environ[ENV_STORE]
    base = Path(os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share")
    return f"sqlite:///{base / 'devmig' / 'fleet.db'}"


def normalise_url(url: str) -> str:
    """A path is an SQLite file; postgresql:// means the psycopg driver (the one devmig installs)."""
    if "://" not in url:
        return f"sqlite:///{Path(url).expanduser()}"
    if url.startswith(("postgresql://", "postgres://")):
        return "postgresql+psycopg://" + url.split("://", 1)[1]
    return url


def _canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


def _document(cap: TypeCapability) -> str:
    """The capability as stored: without available_instances (that belongs to a host's type, not the document)."""
    # pydantic's own JSON is quick but keeps the input's key order; the canonical form is cached by it, since a
    # fleet repeats the same few hundred documents (publish dumps every type of every host)
    return _canonical_json(cap.model_dump_json(exclude_none=True, exclude={"available_instances"}))


@lru_cache(maxsize=4096)
def _canonical_json(text: str) -> str:
    return _canonical(json.loads(text))


#: a device row's columns, in the order _Prepared.devices holds them
_DEVICE_COLUMNS = ("host_id", "kind", "name", "parent", "type_id", "descriptor")


@dataclass(frozen=True)
class _Prepared:
    """A record made ready to store: its types with their documents, its device rows, and the digest of the whole
    inventory, which tells an unchanged republish from a changed one without reading the stored rows."""

    record: HostRecord
    types: list[tuple[TypeRecord, str]]
    devices: list[tuple[str, str, str | None, str | None, str | None]]
    digest: str

    @classmethod
    def of(cls, record: HostRecord, documents: dict[int, str]) -> _Prepared:
        types = []
        for rec in _unique_types(record.types):
            key = id(rec.capability)
            if key not in documents:
                documents[key] = _document(rec.capability)
            types.append((rec, documents[key]))
        devices: list[tuple[str, str, str | None, str | None, str | None]] = [
            (
                d.kind,
                d.name,
                d.parent,
                d.type_id,
                d.descriptor.model_dump_json(exclude_none=True) if d.descriptor else None,
            )
            for d in record.devices
        ]
        inventory = {
            "kernel": record.kernel,
            "warnings": list(record.warnings),
            # order-free: the same types and devices listed in another order are the same inventory
            "types": sorted(
                [rec.parent, rec.type_id, hashlib.sha256(doc.encode()).hexdigest(), rec.available] for rec, doc in types
            ),
            "devices": sorted(devices, key=lambda device: json.dumps(device)),
        }
        return cls(record, types, devices, hashlib.sha256(_canonical(inventory).encode()).hexdigest())


@lru_cache(maxsize=4096)
def _parse(document: str) -> TypeCapability:
    return TypeCapability.model_validate_json(document)


#: seconds libpq may take to connect (TCP and the start-up exchange) before a store counts as unavailable: without it
#: a host that drops packets holds a publish, a heartbeat or `place` for the system's TCP timeout (minutes)
CONNECT_TIMEOUT: Final = 10


def pg_connect_args(query: Mapping[str, object]) -> dict[str, object]:
    """libpq's connect_timeout, unless the store URL sets its own (`?connect_timeout=N`)."""
    return {} if "connect_timeout" in query else {"connect_timeout": CONNECT_TIMEOUT}


class FleetStore:
    def __init__(self, engine: Engine, shown: str, stale_after: float | None = freshness.STALE_AFTER) -> None:
        self.engine = engine
        #: the URL without its password, for messages
        self.shown = shown
        #: place's TTL: hosts last seen longer ago are left out (None: freshness off)
        self.stale_after = stale_after

    # -- opening ---------------------------------------------------------------------------------------------------

    @classmethod
    def open(cls, url: str | None = None, *, stale_after: float | None = None) -> FleetStore:
        """Open (create, upgrade) the store at `url` (default: default_url()). `stale_after` is place's TTL in
        seconds (0: freshness off; default: $DEVMIG_STALE_AFTER, else freshness.STALE_AFTER)."""
        ttl = freshness.default_stale_after() if stale_after is None else (stale_after if stale_after > 0 else None)
        raw = normalise_url(url or default_url())
        try:
            parsed = make_url(raw)
        except (ArgumentError, ValueError):
            raise InputError(f"store URL {raw!r}: expected sqlite:///PATH or postgresql://USER@HOST/DB") from None
        shown = parsed.render_as_string(hide_password=True)
        if parsed.get_backend_name() not in ("sqlite", "postgresql"):
            raise InputError(f"store {shown}: devmig keeps its fleet in SQLite or PostgreSQL")
        try:
            if parsed.get_backend_name() == "sqlite":
                engine = _sqlite_engine(parsed.database, raw)
            else:
                engine = create_engine(raw, pool_pre_ping=True, connect_args=pg_connect_args(parsed.query))
        except (NoSuchModuleError, ArgumentError) as exc:
            raise InputError(f"store {shown}: {exc}") from None
        store = cls(engine, shown, ttl)
        with store._errors("open"):
            store._upgrade()
        return store

    def close(self) -> None:
        self.engine.dispose()

    def __enter__(self) -> FleetStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextmanager
    def _errors(self, what: str) -> Iterator[None]:
        try:
            yield
        except DBAPIError as exc:
            reason = str(exc.orig).strip().splitlines()[0] if exc.orig is not None else str(exc)
            kind = "unavailable" if isinstance(exc, (OperationalError, InterfaceError)) else "database"
            raise StoreError(f"store {self.shown}: {what}: {reason}", kind) from None
        except SQLAlchemyError as exc:
            raise StoreError(f"store {self.shown}: {what}: {exc}") from None

    def _upgrade(self) -> None:
        with self.engine.connect() as conn:
            if _revision(conn) == schema.HEAD:
                return  # the common case, without importing Alembic
        self.migrate("head")

    def migrate(self, revision: str, *, down: bool = False) -> None:
        """Upgrade (or with `down`, downgrade) the schema to `revision` with Alembic. Opening a store upgrades it
        to the head already; this is for tests of the upgrade path and for going back before a downgrade of devmig."""
        from alembic import command
        from alembic.config import Config

        config = Config()
        config.set_main_option("script_location", str(Path(__file__).with_name("migrations")))
        with self.engine.connect() as conn:
            sqlite = conn.dialect.name == "sqlite"
            if sqlite:
                # SQLite changes a table by copying it and dropping the old one; with foreign keys on, that drop
                # deletes every host's types and devices (ON DELETE CASCADE). The pragma only takes effect outside
                # a transaction, so it is sent on the driver's connection before the migration's transaction.
                conn.connection.driver_connection.execute("PRAGMA foreign_keys=OFF")  # type: ignore[union-attr]
            try:
                with conn.begin():
                    config.attributes["connection"] = conn
                    (command.downgrade if down else command.upgrade)(config, revision)
                    if sqlite and conn.exec_driver_sql("PRAGMA foreign_key_check").first() is not None:
                        raise StoreError(f"store {self.shown}: the migration to {revision} broke a foreign key")
            finally:
                if sqlite:
                    conn.connection.driver_connection.execute("PRAGMA foreign_keys=ON")  # type: ignore[union-attr]

    @contextmanager
    def _write(self) -> Iterator[Connection]:
        """A write transaction (SQLite: holding the database's write lock from its start)."""
        with self._errors("write"), self.engine.connect() as conn:
            conn = conn.execution_options(devmig_write=True)
            with conn.begin():
                yield conn

    # -- inventories ------------------------------------------------------------------------------------------------

    def publish(self, record: HostRecord, *, now: float | None = None) -> HostRecord:
        """Store `record` as `record.name`'s inventory, in one transaction: readers see the old inventory or the new
        one, never half. Only what changed is written; an identical inventory keeps its generation and only
        refreshes last_seen. Returns it as stored."""
        return self.publish_many([record], now=now)[0]

    def publish_many(self, records: Sequence[HostRecord], *, now: float | None = None) -> list[HostRecord]:
        """Publish several hosts in one transaction, for a bulk publisher (a collector of many hosts, an import):
        the same statements as one publish, each carrying every host, so the round trips do not grow with the
        hosts. All of them are stored or none. Returns them as stored, in the order given."""
        when = time.time() if now is None else now
        names = [r.name for r in records]
        twice = sorted(name for name, count in Counter(names).items() if count > 1)
        if twice:
            raise InputError(f"host {twice[0]}: given twice in one publish (one inventory per host)")
        if not records:
            return []
        # each distinct capability object is dumped once: a bulk publisher's hosts often share them
        documents: dict[int, str] = {}
        prepared = sorted((_Prepared.of(r, documents) for r in records), key=lambda p: p.record.name)
        h = schema.hosts
        with self._write() as conn:
            rows, new = self._lock_hosts(conn, [p.record.name for p in prepared], when)
            changed = [p for p in prepared if rows[p.record.name].inventory != p.digest]
            if changed:
                self._replace(conn, changed, {p.record.name: int(rows[p.record.name].id) for p in changed}, new)
                conn.execute(
                    update(h)
                    .where(h.c.id == bindparam("b_id"))
                    .values(
                        kernel=bindparam("b_kernel"),
                        warnings=bindparam("b_warnings"),
                        inventory=bindparam("b_inventory"),
                        generation=h.c.generation + 1,
                        published=when,
                        last_seen=when,
                    ),
                    [
                        {
                            "b_id": rows[p.record.name].id,
                            "b_kernel": p.record.kernel,
                            "b_warnings": json.dumps(list(p.record.warnings)),
                            "b_inventory": p.digest,
                        }
                        for p in changed
                    ],
                )
            same = [rows[p.record.name].id for p in prepared if rows[p.record.name].inventory == p.digest]
            if same:
                conn.execute(update(h).where(h.c.id.in_(same)).values(published=when, last_seen=when))
        moved = {p.record.name for p in changed}
        return [
            replace(
                r,
                published=when,
                last_seen=when,
                generation=int(rows[r.name].generation) + (r.name in moved),
            )
            for r in records
        ]

    def heartbeat(self, name: str, *, now: float | None = None) -> float:
        """Record that host `name` is alive at `now` (default: the clock): one UPDATE of its last_seen, which keeps
        it offered by place between publishes. Returns the time recorded."""
        when = time.time() if now is None else now
        h = schema.hosts
        with self._write() as conn:
            found = conn.execute(update(h).where(h.c.name == name).values(last_seen=when)).rowcount
        if not found:
            raise InputError(
                f"host {name}: not in store {self.shown}, so it has no heartbeat to record "
                "(devmig inventory publish adds it)"
            )
        return when

    def _lock_hosts(self, conn: Connection, names: list[str], when: float) -> tuple[dict[str, Any], set[str]]:
        """The hosts' rows (id, inventory digest, generation), locked, in name order so that concurrent publishers
        lock them in the same order; a host not stored yet gets a row (generation 0, no inventory). Also the
        names of the rows this call inserted, which hold no types or devices yet."""
        h = schema.hosts
        query = (
            select(h.c.name, h.c.id, h.c.inventory, h.c.generation)
            .where(h.c.name.in_(names))
            .order_by(h.c.name)
            .with_for_update()
        )
        rows = {row.name: row for row in conn.execute(query)}
        missing = [name for name in names if name not in rows]
        if missing:
            # "or ignore": a concurrent publisher of the same new host inserts it first; its row is locked below
            conn.execute(
                _insert_or_ignore(conn, h, "name"),
                [{"name": name, "published": when, "warnings": "[]", "generation": 0} for name in missing],
            )
            inserted = {row.name: row for row in conn.execute(query.where(h.c.name.in_(missing)))}
            rows.update(inserted)
            return rows, {name for name, row in inserted.items() if row.inventory is None and row.generation == 0}
        return rows, set()

    def _replace(self, conn: Connection, changed: list[_Prepared], host_ids: dict[str, int], new: set[str]) -> None:
        """Write the changed hosts' types and devices: rows that differ are updated, new ones inserted, gone ones
        deleted; each document's counts move by what the hosts gained and lost. Hosts in `new` have no rows yet:
        nothing is read for them."""
        t, d = schema.host_types, schema.devices
        ids = self._capability_ids(conn, {doc: rec.capability for p in changed for rec, doc in p.types})
        old: dict[int, dict[tuple[str, str], tuple[int, int, int | None]]] = {i: {} for i in host_ids.values()}
        known = [host_ids[p.record.name] for p in changed if p.record.name not in new]
        if known:
            for row in conn.execute(
                select(t.c.id, t.c.host_id, t.c.parent, t.c.type_id, t.c.capability_id, t.c.available).where(
                    t.c.host_id.in_(known)
                )
            ):
                old[row.host_id][(row.parent, row.type_id)] = (row.id, row.capability_id, row.available)
        inserts: list[dict[str, Any]] = []
        updates: list[dict[str, Any]] = []
        deletes: list[int] = []
        types: Counter[int] = Counter()
        hosts: Counter[int] = Counter()
        for p in changed:
            host_id = host_ids[p.record.name]
            before = old[host_id]
            after = {(rec.parent, rec.type_id): (ids[doc], rec.available) for rec, doc in p.types}
            for key, (row_id, cap_id, available) in before.items():
                if key not in after:
                    deletes.append(row_id)
                elif after[key] != (cap_id, available):
                    updates.append({"b_id": row_id, "b_capability": after[key][0], "b_available": after[key][1]})
            inserts += [
                {"host_id": host_id, "parent": key[0], "type_id": key[1], "capability_id": cap, "available": free}
                for key, (cap, free) in after.items()
                if key not in before
            ]
            had = Counter(cap for _, cap, _ in before.values())
            has = Counter(cap for cap, _ in after.values())
            types.update(has)
            types.subtract(had)
            hosts.update(set(has))
            hosts.subtract(set(had))
        if deletes:
            conn.execute(delete(t).where(t.c.id.in_(deletes)))
        if updates:
            conn.execute(
                update(t)
                .where(t.c.id == bindparam("b_id"))
                .values(capability_id=bindparam("b_capability"), available=bindparam("b_available")),
                updates,
            )
        if inserts:
            conn.execute(insert(t), inserts)
        self._count(conn, types, hosts)
        stored: dict[int, list[tuple[Any, ...]]] = {i: [] for i in host_ids.values()}
        if known:
            for row in conn.execute(
                select(d.c.host_id, d.c.kind, d.c.name, d.c.parent, d.c.type_id, d.c.descriptor)
                .where(d.c.host_id.in_(known))
                .order_by(d.c.id)
            ):
                stored[row.host_id].append(tuple(row)[1:])
        # devices change seldom (a VM started or stopped): rewritten only for the hosts whose list differs
        rewrite = [p for p in changed if stored[host_ids[p.record.name]] != p.devices]
        if rewrite:
            gone = [host_ids[p.record.name] for p in rewrite if stored[host_ids[p.record.name]]]
            if gone:
                conn.execute(delete(d).where(d.c.host_id.in_(gone)))
            rows = [
                dict(zip(_DEVICE_COLUMNS, (host_ids[p.record.name], *device), strict=True))
                for p in rewrite
                for device in p.devices
            ]
            if rows:
                conn.execute(insert(d), rows)

    @staticmethod
    def _count(conn: Connection, types: Counter[int], hosts: Counter[int]) -> None:
        """Move each document's host-type and host counts by these amounts: one executemany, which psycopg sends as
        a pipeline (one round trip), in id order, so concurrent publishers lock documents in the same order. (One
        UPDATE with CASE costs more: its SQL differs every time, so SQLAlchemy compiles it every time.)"""
        c = schema.capabilities
        moves = [
            {"b_id": cap_id, "b_types": types[cap_id], "b_hosts": hosts[cap_id]}
            for cap_id in sorted(types.keys() | hosts.keys())
            if types[cap_id] or hosts[cap_id]
        ]
        if moves:
            conn.execute(
                update(c)
                .where(c.c.id == bindparam("b_id"))
                .values(types=c.c.types + bindparam("b_types"), hosts=c.c.hosts + bindparam("b_hosts")),
                moves,
            )

    def _capability_ids(self, conn: Connection, docs: dict[str, TypeCapability]) -> dict[str, int]:
        """The row id of each distinct document, inserting those the store does not have yet."""
        if not docs:
            return {}
        digests = {hashlib.sha256(doc.encode()).hexdigest(): doc for doc in docs}
        table = schema.capabilities
        known: dict[str, int] = {
            digest: row_id
            for digest, row_id in conn.execute(
                select(table.c.digest, table.c.id).where(table.c.digest.in_(list(digests)))
            )
        }
        for digest, doc in digests.items():
            if digest in known:
                continue
            cap = docs[doc]
            version = cap.software_version
            row = {
                "digest": digest,
                "device_api": cap.device_api,
                "type_id": cap.type,
                "api_key": _canonical(cap.api),
                "major": version.major,
                "minor": version.minor,
                "bugfix": version.bugfix,
                "confidence": cap.confidence,
                "document": doc,
                "types": 0,
                "hosts": 0,
            }
            known[digest] = _insert_ignoring_duplicate(conn, row)
            models = [{"capability_id": known[digest], "model": m} for m in cap.models]
            if models:
                existing = conn.execute(
                    select(schema.capability_models.c.model).where(
                        schema.capability_models.c.capability_id == known[digest]
                    )
                ).scalars()
                missing = [m for m in models if m["model"] not in set(existing)]
                if missing:
                    conn.execute(insert(schema.capability_models), missing)
        return {doc: known[digest] for digest, doc in digests.items()}

    def hosts(self) -> list[HostRecord]:
        """Every host's inventory, by name."""
        with self._errors("read"), self.engine.connect() as conn:
            names = conn.execute(select(schema.hosts.c.name).order_by(schema.hosts.c.name)).scalars().all()
            return [self._read_host(conn, name) for name in names]

    def host(self, name: str) -> HostRecord:
        with self._errors("read"), self.engine.connect() as conn:
            return self._read_host(conn, name)

    def _read_host(self, conn: Connection, name: str) -> HostRecord:
        h = schema.hosts
        row = conn.execute(select(h).where(h.c.name == name)).first()
        if row is None:
            raise InputError(f"host {name}: not in store {self.shown} (devmig inventory publish adds it)")
        t, c, d = schema.host_types, schema.capabilities, schema.devices
        types = tuple(
            TypeRecord(parent, type_id, _parse(document), available)
            for parent, type_id, available, document in conn.execute(
                select(t.c.parent, t.c.type_id, t.c.available, c.c.document)
                .join(c, c.c.id == t.c.capability_id)
                .where(t.c.host_id == row.id)
                .order_by(t.c.parent, t.c.type_id)
            )
        )
        devices = tuple(
            DeviceRecord(
                _device_kind(kind), dname, parent, type_id, DeviceDescriptor.model_validate_json(desc) if desc else None
            )
            for kind, dname, parent, type_id, desc in conn.execute(
                select(d.c.kind, d.c.name, d.c.parent, d.c.type_id, d.c.descriptor)
                .where(d.c.host_id == row.id)
                .order_by(d.c.id)
            )
        )
        return HostRecord(
            row.name,
            types,
            devices,
            row.kernel,
            row.published,
            tuple(json.loads(row.warnings)),
            row.last_seen,
            row.generation,
        )

    def gauges(self, *, now: float | None = None) -> FleetGauges:
        """What the store-wide metrics show, in one read transaction: each host type's free count less the active
        claims on it, each host's last sign of life and generation, and the active claims per host."""
        when = time.time() if now is None else now
        h, t = schema.hosts, schema.host_types
        with self._errors("read"), self.engine.connect() as conn, conn.begin():
            claimed = self._claimed(conn, when)
            hosts = [
                HostSeen(row.name, row.last_seen, int(row.generation))
                for row in conn.execute(select(h.c.name, h.c.last_seen, h.c.generation).order_by(h.c.name))
            ]
            free = [
                (host, parent, type_id, max(0, int(available) - claimed.get((host, parent, type_id), 0)))
                for host, parent, type_id, available in conn.execute(
                    select(h.c.name, t.c.parent, t.c.type_id, t.c.available)
                    .join(h, h.c.id == t.c.host_id)
                    .where(t.c.available.is_not(None))
                    .order_by(h.c.name, t.c.parent, t.c.type_id)
                )
            ]
        per_host: Counter[str] = Counter()
        for (host, _, _), count in claimed.items():
            per_host[host] += count
        return FleetGauges(free, hosts, dict(per_host))

    def remove(self, name: str) -> None:
        """Forget a host (its types, devices; its claims stay until they expire)."""
        h = schema.hosts
        with self._write() as conn:
            host_id = conn.execute(select(h.c.id).where(h.c.name == name).with_for_update()).scalar()
            if host_id is not None:
                t = schema.host_types
                had = Counter(
                    {
                        int(cap_id): int(count)
                        for cap_id, count in conn.execute(
                            select(t.c.capability_id, func.count())
                            .where(t.c.host_id == host_id)
                            .group_by(t.c.capability_id)
                        )
                    }
                )
                self._count(conn, Counter({cap: -n for cap, n in had.items()}), Counter(dict.fromkeys(had, -1)))
            gone = conn.execute(delete(h).where(h.c.name == name)).rowcount
        if not gone:
            raise InputError(f"host {name}: not in store {self.shown}")

    # -- placement --------------------------------------------------------------------------------------------------

    def place(
        self,
        source: DeviceDescriptor,
        *,
        limit: int = 10,
        claim: float | None = None,
        holder: str | None = None,
        exclude: Sequence[str] = (),
        now: float | None = None,
        stale_after: float | None = None,
    ) -> Placement:
        """The host types that can take `source`, best first (at most `limit`), and why the others cannot. Hosts in
        `exclude` (the source's own, say) are not offered, nor hosts last seen more than `stale_after` seconds
        before `now` (default: the store's `stale_after`; 0: freshness off), which are refused as stale. With
        `claim` (seconds), also reserve one instance of the best candidate that still has room."""
        when = time.time() if now is None else now
        ttl = self.stale_after if stale_after is None else (stale_after if stale_after > 0 else None)
        since = freshness.cutoff(when, ttl)
        with self._errors("place"), self.engine.connect() as conn:
            placement, order, rejected = self._judge(conn, source)
            placement.stale_after = ttl
            placement.candidates = self._candidates(conn, order, limit, when, exclude, since)
            placement.refused = self._refusals(conn, source, order, rejected, when, ttl)
        if claim is not None:
            placement.claim = self._claim(source, order, claim, holder, when, exclude, since)
        return placement

    def _judge(self, conn: Connection, source: DeviceDescriptor) -> tuple[Placement, Ranked, list[Rejected]]:
        """Narrow in SQL, check exactly in Python: the compatible documents by rank (free left aside), and the
        refused ones with their first error."""
        c, m = schema.capabilities, schema.capability_models
        version = source.software_version
        narrowed = select(c.c.id, c.c.document).where(
            c.c.device_api == source.device_api,
            c.c.api_key == _canonical(source.api),
            c.c.major == version.major,
            c.c.minor >= version.minor,
            c.c.types > 0,
        )
        if source.model is not None:
            narrowed = narrowed.where(c.c.id.in_(select(m.c.capability_id).where(m.c.model == source.model)))
        else:
            narrowed = narrowed.where(c.c.type_id == source.type, ~c.c.id.in_(select(m.c.capability_id)))
        placement = Placement(source)
        placement.host_types = int(conn.execute(select(func.coalesce(func.sum(c.c.types), 0))).scalar_one())
        compatible: Ranked = {}
        rejected: list[Rejected] = []
        for cap_id, document in conn.execute(narrowed):
            cap = _parse(document)
            verdict = check(source, cap)
            placement.checked += 1
            if verdict.compatible:
                compatible[cap_id] = (cap, verdict, candidate_rank(source, cap, verdict))
            else:
                rejected.append((cap_id, *first_error(verdict)))
        order = dict(sorted(compatible.items(), key=lambda item: (item[1][2], item[0])))
        return placement, order, rejected

    def _claimed(self, conn: Connection, when: float) -> dict[tuple[str, str, str], int]:
        """Active claims per (host, parent, type): few, so read whole rather than joined to every host type."""
        cl = schema.claims
        rows = conn.execute(
            select(cl.c.host, cl.c.parent, cl.c.type_id, func.count())
            .where(cl.c.expires > when)
            .group_by(cl.c.host, cl.c.parent, cl.c.type_id)
        )
        return {(host, parent, type_id): int(count) for host, parent, type_id, count in rows}

    def _candidates(
        self,
        conn: Connection,
        order: Ranked,
        limit: int,
        when: float,
        exclude: Sequence[str],
        since: float | None,
    ) -> list[FleetCandidate]:
        """The best `limit` host types with room on hosts seen at `since` or later (None: any host). Documents of
        equal rank are taken together, best first; within them host types come by free instances. Claims only lower
        a free count, so with C active claims the best `limit` are among the first `limit + C` by published count:
        the index walks no further than that."""
        if not order or limit <= 0:
            return []
        t, h = schema.host_types, schema.hosts
        claimed = self._claimed(conn, when)
        window = limit + sum(claimed.values())
        out: list[FleetCandidate] = []
        for tier in _tiers(order):
            query = (
                select(
                    h.c.name, t.c.parent, t.c.type_id, t.c.capability_id, t.c.available, h.c.last_seen, h.c.generation
                )
                .join(h, h.c.id == t.c.host_id)
                .where(
                    t.c.capability_id.in_(tier),
                    or_(t.c.available.is_(None), t.c.available > 0),
                    h.c.name.not_in(list(exclude)),
                )
                .order_by(t.c.available.desc().nulls_last(), h.c.name, t.c.parent)
                .limit(window)
            )
            if since is not None:
                query = query.where(h.c.last_seen >= since)
            found = []
            for host, parent, type_id, cap_id, available, last_seen, generation in conn.execute(query):
                free = None if available is None else available - claimed.get((host, parent, type_id), 0)
                if free is not None and free <= 0:
                    continue
                cap, verdict, rank = order[cap_id]
                found.append(
                    FleetCandidate(
                        host,
                        parent,
                        type_id,
                        cap,
                        verdict,
                        rank._replace(fewer_free=-(free or 0)),
                        free,
                        last_seen,
                        generation,
                    )
                )
            found.sort(key=lambda c: (c.free is None, -(c.free or 0), c.host, c.parent))
            out += found[: limit - len(out)]
            if len(out) >= limit:
                break
        return out

    def _refusals(
        self,
        conn: Connection,
        source: DeviceDescriptor,
        order: Ranked,
        rejected: list[Rejected],
        when: float,
        ttl: float | None,
    ) -> list[RefusalGroup]:
        """Why the rest cannot: the stale hosts' types first, as one reason, then per distinct document, with the
        host-type and host counts kept on it less those on stale hosts, so each host type has one reason."""
        c, m, t, h = schema.capabilities, schema.capability_models, schema.host_types, schema.hosts
        since = freshness.cutoff(when, ttl)
        reasons: list[tuple[str, str, int, int]] = []
        stale: dict[int, tuple[int, int]] = {}
        if ttl is not None and since is not None:
            # two index range reads, not an OR (which SQLite answers by scanning every host type); few rows when
            # the fleet is healthy, and the host types of stale hosts through their (host_id, ...) index
            stale_ids = (
                select(h.c.id).where(h.c.last_seen < since).union_all(select(h.c.id).where(h.c.last_seen.is_(None)))
            )
            hosts_stale = int(conn.execute(select(func.count()).select_from(stale_ids.subquery())).scalar_one())
            if hosts_stale:
                stale = {
                    int(cap_id): (int(types), int(hosts))
                    for cap_id, types, hosts in conn.execute(
                        select(t.c.capability_id, func.count(), func.count(t.c.host_id.distinct()))
                        .where(t.c.host_id.in_(stale_ids))
                        .group_by(t.c.capability_id)
                    )
                }
                # the example: the most recently seen of them, else one never seen
                example = (
                    conn.execute(
                        select(h.c.name, h.c.last_seen)
                        .where(h.c.last_seen < since)
                        .order_by(h.c.last_seen.desc(), h.c.name)
                        .limit(1)
                    ).first()
                    or conn.execute(
                        select(h.c.name, h.c.last_seen).where(h.c.last_seen.is_(None)).order_by(h.c.name).limit(1)
                    ).one()
                )
                reasons.append(
                    (
                        STALE_CODE,
                        freshness.stale_message(example.name, example.last_seen, when, ttl),
                        sum(types for types, _ in stale.values()),
                        hosts_stale,
                    )
                )
        models: dict[int, list[str]] = {}
        for cap_id, model in conn.execute(select(m.c.capability_id, m.c.model)):
            models.setdefault(cap_id, []).append(model)
        rows = {
            row.id: row
            for row in conn.execute(
                select(c)
                .where(c.c.types > 0)
                .with_only_columns(
                    c.c.id,
                    c.c.device_api,
                    c.c.type_id,
                    c.c.api_key,
                    c.c.major,
                    c.c.minor,
                    c.c.bugfix,
                    c.c.confidence,
                    c.c.types,
                    c.c.hosts,
                )
            )
        }

        def fresh(cap_id: int) -> tuple[int, int]:
            """The document's host types and hosts, less those on stale hosts."""
            gone_types, gone_hosts = stale.get(cap_id, (0, 0))
            return rows[cap_id].types - gone_types, rows[cap_id].hosts - gone_hosts

        for cap_id, code, message in rejected:
            if cap_id in rows and fresh(cap_id)[0] > 0:
                reasons.append((code, message, *fresh(cap_id)))
        checked = {cap_id for cap_id, _, _ in rejected} | set(order)
        for row in rows.values():
            if row.id in checked or fresh(row.id)[0] <= 0:
                continue
            stored = StoredIdentity(
                row.device_api,
                row.type_id,
                json.loads(row.api_key),
                tuple(models.get(row.id, ())),
                f"{row.major}.{row.minor}.{row.bugfix}",
                _confidence(row.confidence),
            )
            reasons.append((*identity_reason(source, stored), *fresh(row.id)))
        if order:
            full = select(func.count(), func.count(t.c.host_id.distinct())).where(
                t.c.capability_id.in_(list(order)), t.c.available <= 0
            )
            full_types, full_hosts = conn.execute(full).one()
            if stale:
                # a stale host's full types are counted as stale: taken off here, which is exact for the hosts too
                # (a host is stale or fresh whole), and leaves the common case a read of one covering index
                gone_types, gone_hosts = conn.execute(full.where(t.c.host_id.in_(stale_ids))).one()
                full_types, full_hosts = full_types - gone_types, full_hosts - gone_hosts
            claimed = self._claimed(conn, when)
            if claimed:  # host types with room that claims have taken whole
                with_room = (
                    select(h.c.name, t.c.parent, t.c.type_id, t.c.available)
                    .join(h, h.c.id == t.c.host_id)
                    .where(t.c.capability_id.in_(list(order)), t.c.available > 0)
                    .where(h.c.name.in_({host for host, _, _ in claimed}))
                )
                if since is not None:
                    with_room = with_room.where(h.c.last_seen >= since)
                full_claimed = [
                    (host, available)
                    for host, parent, type_id, available in conn.execute(with_room)
                    if available - claimed.get((host, parent, type_id), 0) <= 0
                ]
                full_types += len(full_claimed)
                full_hosts += len({host for host, _ in full_claimed})
            if full_types:
                reasons.append(
                    (NO_ROOM_CODE, "compatible, but no free instance (claims counted)", full_types, full_hosts)
                )
        return group(reasons)

    # -- claims -----------------------------------------------------------------------------------------------------

    def _claim(
        self,
        source: DeviceDescriptor,
        order: Ranked,
        seconds: float,
        holder: str | None,
        when: float,
        exclude: Sequence[str],
        since: float | None,
    ) -> Claim | None:
        """Reserve one instance of the best candidate that still has room; None when none has. A candidate another
        claimer holds locked is skipped; when only such candidates were left, the claim is tried again, so claiming
        never grants more than the free instances and, given time, never fewer."""
        if seconds <= 0:
            raise InputError(f"claim of {seconds} seconds: a claim must last a positive time")
        deadline = time.monotonic() + CLAIM_WAIT
        while True:
            claim, busy = self._claim_once(source, order, seconds, holder, when, exclude, since)
            if claim is not None or not busy or time.monotonic() > deadline:
                return claim
            time.sleep(0.005)

    def _claim_once(
        self,
        source: DeviceDescriptor,
        order: Ranked,
        seconds: float,
        holder: str | None,
        when: float,
        exclude: Sequence[str],
        since: float | None,
    ) -> tuple[Claim | None, bool]:
        """One try: (the claim, or None; whether a candidate was skipped because another claimer held it)."""
        t, h, cl = schema.host_types, schema.hosts, schema.claims
        busy = False
        window = 16
        with self._write() as conn:
            while True:
                candidates = self._candidates(conn, order, window, when, exclude, since)
                for candidate in candidates:
                    key = (candidate.host, candidate.parent, candidate.type_id)
                    row = (
                        select(t.c.id, t.c.available)
                        .join(h, h.c.id == t.c.host_id)
                        .where(
                            h.c.name == candidate.host, t.c.parent == candidate.parent, t.c.type_id == candidate.type_id
                        )
                    )
                    if conn.dialect.name == "postgresql":
                        # SQLite holds the whole database's write lock already (BEGIN IMMEDIATE)
                        row = row.with_for_update(of=t, skip_locked=True)
                    locked = conn.execute(row).first()
                    if locked is None:
                        busy = True  # another scheduler is claiming it right now: take the next one
                        continue
                    taken = conn.execute(
                        select(func.count()).where(
                            cl.c.host == key[0], cl.c.parent == key[1], cl.c.type_id == key[2], cl.c.expires > when
                        )
                    ).scalar_one()
                    if locked.available is not None and locked.available - taken <= 0:
                        continue  # taken while we looked: counted again under the lock
                    claim = Claim(str(uuid.uuid4()), *key, when + seconds, holder)
                    conn.execute(
                        insert(cl).values(
                            id=claim.id,
                            host=claim.host,
                            parent=claim.parent,
                            type_id=claim.type_id,
                            created=when,
                            expires=claim.expires,
                            holder=holder,
                            source=source.model_dump_json(exclude_none=True),
                        )
                    )
                    return claim, busy
                if len(candidates) < window:
                    return None, busy
                window *= 4  # every one of these was full or held: look further down the ranking

    def release(self, claim_id: str) -> Claim:
        """Give a claim back before it expires."""
        with self._write() as conn:
            row = conn.execute(select(schema.claims).where(schema.claims.c.id == claim_id)).first()
            if row is None:
                raise InputError(f"claim {claim_id}: not in store {self.shown} (released already, or never made)")
            conn.execute(delete(schema.claims).where(schema.claims.c.id == claim_id))
        return Claim(row.id, row.host, row.parent, row.type_id, row.expires, row.holder)

    def claims(self, *, now: float | None = None, expired: bool = False) -> list[Claim]:
        """The active claims (with `expired`, the expired ones too), soonest to expire first."""
        when = time.time() if now is None else now
        cl = schema.claims
        query = select(cl).order_by(cl.c.expires, cl.c.id)
        if not expired:
            query = query.where(cl.c.expires > when)
        with self._errors("read"), self.engine.connect() as conn:
            return [Claim(r.id, r.host, r.parent, r.type_id, r.expires, r.holder) for r in conn.execute(query)]

    def purge(self, *, now: float | None = None) -> int:
        """Delete expired claims; how many."""
        when = time.time() if now is None else now
        with self._write() as conn:
            return int(conn.execute(delete(schema.claims).where(schema.claims.c.expires <= when)).rowcount)


def _confidence(text: str) -> Confidence:
    if text not in ("declared", "profile", "unverified"):
        raise StoreError(f"a stored capability has confidence {text!r}: the store was written by another program")
    return cast(Confidence, text)


def _device_kind(text: str) -> DeviceKind:
    if text not in get_args(DeviceKind):
        raise StoreError(f"a stored device has kind {text!r}: the store was written by another program")
    return cast(DeviceKind, text)


def _tiers(order: Ranked) -> list[list[int]]:
    """Capability ids grouped by equal rank (free instances aside), best group first."""
    tiers: list[list[int]] = []
    last: Rank | None = None
    for cap_id, (_, _, rank) in order.items():
        if last is None or rank != last:
            tiers.append([])
        tiers[-1].append(cap_id)
        last = rank
    return tiers


def _unique_types(types: Sequence[TypeRecord]) -> list[TypeRecord]:
    seen: dict[tuple[str, str], TypeRecord] = {}
    for record in types:
        seen.setdefault((record.parent, record.type_id), record)
    return list(seen.values())


def _insert_or_ignore(conn: Connection, table: Table, unique: str) -> Insert:
    """An INSERT that skips a row whose `unique` column is taken (a concurrent publisher inserted it first)."""
    if conn.dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as pg_insert

        return pg_insert(table).on_conflict_do_nothing(index_elements=[unique])
    from sqlalchemy.dialects.sqlite import insert as sqlite_insert

    return sqlite_insert(table).on_conflict_do_nothing(index_elements=[unique])


def _insert_ignoring_duplicate(conn: Connection, row: dict[str, Any]) -> int:
    """Insert a capability unless a concurrent publisher just did; its id either way."""
    table = schema.capabilities
    conn.execute(_insert_or_ignore(conn, table, "digest").values(**row))
    return int(conn.execute(select(table.c.id).where(table.c.digest == row["digest"])).scalar_one())


def _revision(conn: Connection) -> str | None:
    try:
        return conn.exec_driver_sql("SELECT version_num FROM alembic_version").scalar()
    except DBAPIError:
        conn.rollback()
        return None


def _read_only(path: Path) -> bool:
    """A store this user may read but not write (another user's, root's): WAL needs its -shm file beside the
    database, which only a writer can make, so such a store is opened read-only and immutable."""
    return (
        path.is_file()
        and os.access(path, os.R_OK)
        and not (os.access(path, os.W_OK) and os.access(path.parent, os.W_OK))
    )


def _sqlite_engine(database: str | None, url: str) -> Engine:
    read_only = False
    if database and database != ":memory:":
        path = Path(database).expanduser()
        read_only = _read_only(path)
        if read_only:
            # a snapshot for the read-only commands (place, inventory show); a write fails as the file's mode says
            url = f"sqlite:///file:{quote(str(path))}?mode=ro&immutable=1&uri=true"
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(url, connect_args={"timeout": 60})
    pragmas = (
        ("foreign_keys=ON",)
        if read_only
        else ("journal_mode=WAL", "foreign_keys=ON", "busy_timeout=60000", "synchronous=NORMAL")
    )

    @event.listens_for(engine, "connect")
    def _connect(dbapi_conn: Any, record: Any) -> None:
        # let SQLAlchemy's "begin" below decide how a transaction starts (pysqlite's own BEGIN is deferred)
        dbapi_conn.isolation_level = None
        cursor = dbapi_conn.cursor()
        for pragma in pragmas:
            cursor.execute(f"PRAGMA {pragma}")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _begin(conn: Connection) -> None:
        # writes take the database's write lock at once, so a claim's count and insert cannot interleave
        conn.exec_driver_sql("BEGIN IMMEDIATE" if conn.get_execution_options().get("devmig_write") else "BEGIN")

    return engine


__all__ = ["CLAIM_SECONDS", "FleetStore", "StoreError", "default_url"]
