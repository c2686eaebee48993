"""Fixtures of the fleet tests: one throwaway PostgreSQL server per session, and `store_url`, which runs a test once
on SQLite and once on a fresh PostgreSQL database of that server.

Without PostgreSQL the PostgreSQL half is skipped, with the reason; in CI (CI=true) it fails instead, so a CI run
cannot pass on SQLite alone (scripts/setup installs Debian's postgresql as root).
"""

from __future__ import annotations

import contextlib
import itertools
import re
from collections.abc import Iterator
from pathlib import Path
from typing import NoReturn

import pytest

from devmig.testing.ci import missing_prerequisite
from devmig.testing.postgres import PostgresServer, PostgresUnavailable, find_bindir, postgres_server

STORE_BACKENDS = ["sqlite", "postgresql"]

_database_numbers = itertools.count(1)


def postgres_missing(error: PostgresUnavailable) -> NoReturn:
    """Skip a test that needs PostgreSQL, or fail it in CI, where a skip would hide a missing install step."""
    missing_prerequisite(f"PostgreSQL is needed: {error}")


@pytest.fixture(scope="session")
def pg_bindir() -> Path:
    """The PostgreSQL server binaries, for tests that start servers of their own."""
    try:
        return find_bindir()
    except PostgresUnavailable as error:
        postgres_missing(error)


@pytest.fixture(scope="session")
def pg_server() -> Iterator[PostgresServer]:
    """One server for the whole session: starting one costs ~0.5 s, a database on it ~10 ms."""
    with contextlib.ExitStack() as stack:
        try:
            server = stack.enter_context(postgres_server())
        except PostgresUnavailable as error:
            postgres_missing(error)
        yield server


def database_name(node_name: str) -> str:
    """A database name unique in the session that still says which test it belongs to (63 characters at most)."""
    slug = re.sub(r"[^a-z0-9_]+", "_", node_name.lower()).strip("_")
    return f"t{next(_database_numbers)}_{slug}"[:63]


@pytest.fixture
def pg_database(request: pytest.FixtureRequest, pg_server: PostgresServer) -> Iterator[str]:
    """The URL of a fresh, empty database of its own on the session's server, dropped after the test."""
    name = database_name(request.node.name)
    url = pg_server.new_database(name)
    yield url
    pg_server.drop_database(name)  # WITH (FORCE): also closes what the test left connected


@pytest.fixture(params=STORE_BACKENDS)
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A store URL on each database: an SQLite file in the test's directory, or a fresh PostgreSQL database."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'fleet.db'}"
    # Looked up only here, so a run of the SQLite half alone (-k sqlite) starts no server.
    url: str = request.getfixturevalue("pg_database")
    return url
