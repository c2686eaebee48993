"""The throwaway PostgreSQL server the store tests run on: it starts, answers through SQLAlchemy, gives each test a
database of its own, and leaves neither a process nor a directory behind, even when the block using it fails."""

from __future__ import annotations

import contextlib
import os
import pwd
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine, create_engine, inspect, text

from devmig.errors import DevmigError
from devmig.testing import postgres
from devmig.testing.postgres import PostgresError, PostgresServer, PostgresUnavailable, find_bindir, postgres_server


@contextlib.contextmanager
def engine_for(url: str) -> Iterator[Engine]:
    engine = create_engine(url)
    try:
        yield engine
    finally:
        engine.dispose()


def scalar(url: str, query: str) -> object:
    with engine_for(url) as engine, engine.connect() as conn:
        return conn.execute(text(query)).scalar_one()


def refuses_connections(port: int) -> bool:
    with socket.socket() as probe:
        return probe.connect_ex(("127.0.0.1", port)) != 0


def test_the_session_server_answers_through_sqlalchemy(pg_server: PostgresServer) -> None:
    assert pg_server.url == f"postgresql+psycopg://postgres@127.0.0.1:{pg_server.port}/postgres"
    assert str(scalar(pg_server.url, "SELECT version()")).startswith("PostgreSQL ")
    # a test server: loopback only, durability traded for speed
    assert scalar(pg_server.url, "SHOW listen_addresses") == "127.0.0.1"
    assert scalar(pg_server.url, "SHOW fsync") == "off"
    assert scalar(pg_server.url, "SHOW unix_socket_directories") == str(pg_server.directory)


def test_store_url_is_a_fresh_empty_database(store_url: str) -> None:
    with engine_for(store_url) as engine:
        assert inspect(engine).get_table_names() == []
        with engine.begin() as conn:
            conn.execute(text("CREATE TABLE hosts (name VARCHAR(64) PRIMARY KEY)"))
        assert inspect(engine).get_table_names() == ["hosts"]


def test_databases_of_the_server_are_isolated(pg_server: PostgresServer, pg_database: str) -> None:
    with engine_for(pg_database) as engine, engine.begin() as conn:
        conn.execute(text("CREATE TABLE hosts (name VARCHAR(64) PRIMARY KEY)"))
        conn.execute(text("INSERT INTO hosts VALUES ('alpha')"))
    other = pg_server.new_database("t_isolated_other")
    try:
        assert scalar(other, "SELECT count(*) FROM pg_tables WHERE tablename = 'hosts'") == 0
        assert scalar(pg_database, "SELECT count(*) FROM hosts") == 1
        assert scalar(pg_database, "SELECT current_database()") == pg_database.rsplit("/", 1)[1]
    finally:
        pg_server.drop_database("t_isolated_other")


def test_a_database_that_exists_or_a_bad_name_is_one_clear_error(pg_server: PostgresServer, pg_database: str) -> None:
    name = pg_database.rsplit("/", 1)[1]
    with pytest.raises(PostgresError, match=f'create database {name} on the test server .*"{name}" already exists'):
        pg_server.new_database(name)
    with pytest.raises(PostgresError, match="database name 'a-b; DROP': expected letters, digits and _"):
        pg_server.new_database("a-b; DROP")


def test_dropping_a_database_closes_what_a_test_left_open(pg_server: PostgresServer) -> None:
    url = pg_server.new_database("t_left_open")
    engine = create_engine(url)
    conn = engine.connect()  # a test that forgot to close: the drop must not hang or fail on it
    try:
        pg_server.drop_database("t_left_open")
        assert scalar(pg_server.url, "SELECT count(*) FROM pg_database WHERE datname = 't_left_open'") == 0
    finally:
        conn.invalidate()
        engine.dispose()


def test_the_server_is_gone_after_the_block(pg_bindir: Path) -> None:
    with postgres_server(bindir=pg_bindir) as server:
        assert server.pid is not None and postgres._alive(server.pid)
        assert str(scalar(server.url, "SELECT version()")).startswith("PostgreSQL ")
        assert scalar(server.new_database("t_mine"), "SELECT current_database()") == "t_mine"
        if os.geteuid() == 0:  # PostgreSQL refuses root: it runs as Debian's postgres user, in a directory of its own
            uid = pwd.getpwnam("postgres").pw_uid
            assert server.directory.stat().st_uid == uid
            status = Path(f"/proc/{server.pid}/status").read_text()
            assert f"Uid:\t{uid}\t" in status
        pid, directory, port = server.pid, server.directory, server.port
    assert not postgres._alive(pid)
    assert not directory.exists()
    assert refuses_connections(port)


def test_a_taken_port_is_retried_and_a_failing_block_still_cleans_up(
    pg_bindir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        taken = squatter.getsockname()[1]
        ports = iter([taken])
        real_free_port = postgres.free_port
        monkeypatch.setattr(postgres, "free_port", lambda: next(ports, None) or real_free_port())
        seen: list[PostgresServer] = []
        with pytest.raises(RuntimeError, match="the test failed"), postgres_server(bindir=pg_bindir) as server:
            seen.append(server)
            assert server.port != taken
            assert scalar(server.url, "SELECT 1") == 1
            raise RuntimeError("the test failed")
    (server,) = seen
    assert server.pid is not None and not postgres._alive(server.pid)
    assert not server.directory.exists()


def test_postgresql_missing_is_one_clear_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(postgres.BINDIR_ENV, raising=False)
    with pytest.raises(PostgresUnavailable) as raised:
        find_bindir(lib_dir=tmp_path, path=str(tmp_path))
    assert isinstance(raised.value, DevmigError)
    assert str(raised.value).startswith("PostgreSQL is not installed: no initdb, pg_ctl, postgres in ")
    assert "apt-get install postgresql" in str(raised.value) and "\n" not in str(raised.value)
    with (
        pytest.raises(PostgresUnavailable, match=f"{tmp_path} does not hold the PostgreSQL binaries"),
        postgres_server(bindir=tmp_path),
    ):
        pass
    monkeypatch.setenv(postgres.BINDIR_ENV, str(tmp_path))
    with pytest.raises(PostgresUnavailable, match=f"DEVMIG_POSTGRES_BINDIR={tmp_path} does not hold"):
        find_bindir()


def test_the_newest_installed_version_is_found(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(postgres.BINDIR_ENV, raising=False)
    for version in ("9.6", "15", "13", "16"):
        bindir = tmp_path / version / "bin"
        bindir.mkdir(parents=True)
        if version != "16":  # 16 is only half there (a client package): not a server
            for name in postgres.REQUIRED_BINARIES:
                (bindir / name).touch(mode=0o755)
    assert find_bindir(lib_dir=tmp_path, path="") == tmp_path / "15" / "bin"
