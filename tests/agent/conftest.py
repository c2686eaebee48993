"""Fixtures of the agent's tests: the fleet tests' stores (SQLite, and a throwaway PostgreSQL server), and helpers
to run agents in this process."""

from __future__ import annotations

from tests.fleet.conftest import pg_bindir, pg_database, pg_server, store_url

__all__ = ["pg_bindir", "pg_database", "pg_server", "store_url"]
