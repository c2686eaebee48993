"""A throwaway PostgreSQL server for tests and benchmarks: Debian's postgresql package, `initdb` + `pg_ctl` in a
temporary directory, on a free loopback port, gone (process and directory) when the context manager exits.

    with postgres_server() as server:
        engine = sqlalchemy.create_engine(server.url)          # postgresql+psycopg://postgres@127.0.0.1:PORT/postgres
        url = server.new_database("t_store")                   # a fresh, empty database on the same server

The server listens on 127.0.0.1 only (and on a unix socket in its own directory), trusts every connection it can
get (there are no others), and trades durability for speed: fsync, full-page writes and synchronous commit are off,
JIT is off. PostgreSQL refuses to run as root; as root, initdb and the server run as the `postgres` user that
Debian's package creates, and the temporary directory belongs to it.

`PostgresUnavailable` (one line: what is missing) when PostgreSQL is not installed or cannot run here;
`PostgresError` when it is installed but fails (the server log's last lines say why).
"""

from __future__ import annotations

import contextlib
import os
import pwd
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql

from devmig.errors import DevmigError

#: where Debian's postgresql-NN packages put their binaries (one directory per major version)
DEBIAN_LIB_DIR = Path("/usr/lib/postgresql")
#: overrides the search for the server binaries (a directory holding initdb, pg_ctl, postgres)
BINDIR_ENV = "DEVMIG_POSTGRES_BINDIR"
#: the unprivileged user initdb and the server run as when we are root (Debian's package creates it)
SYSTEM_USER = "postgres"
SUPERUSER = "postgres"  # the database superuser initdb creates; the URL's user
ADMIN_DATABASE = "postgres"
REQUIRED_BINARIES = ("initdb", "pg_ctl", "postgres")
START_TIMEOUT = 60  # seconds: pg_ctl -w; a cold start on 2 busy cores takes ~1 s
PORT_ATTEMPTS = 5  # a free port can be taken between our probe and the server's bind: try another
#: where the server's directory goes when nobody says: RAM. On this project's VMs the disk makes CREATE DATABASE
#: take 85-220 ms (and growing as dirty pages pile up) against 8 ms on tmpfs, and initdb + start 1.0 s against 0.5 s.
RAM_DIR = Path("/dev/shm")
RAM_DIR_MIN_FREE = 2 << 30  # bytes; a container's 64 MiB /dev/shm would fill up: use the temp directory then
#: overrides where the server's temporary directory goes
BASE_DIR_ENV = "DEVMIG_POSTGRES_TMPDIR"

#: settings for a server that only tests use: durability off, small, quiet, predictable
TEST_SETTINGS: Mapping[str, str] = {
    "listen_addresses": "127.0.0.1",
    "fsync": "off",
    "synchronous_commit": "off",
    "full_page_writes": "off",
    "wal_level": "minimal",
    "max_wal_senders": "0",
    "max_wal_size": "1GB",
    "checkpoint_timeout": "30min",
    "shared_buffers": "64MB",
    "huge_pages": "off",
    "max_connections": "100",
    "jit": "off",  # compiling a plan costs tens of milliseconds: noise in latency figures, no gain on test data
    "timezone": "UTC",
    "log_min_messages": "warning",
    "logging_collector": "off",
}

_DATABASE_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")
_VERSION_DIR = re.compile(r"^\d+(\.\d+)*$")


class PostgresError(DevmigError):
    """The throwaway PostgreSQL server failed: initdb, start, stop or a database it was asked for."""


class PostgresUnavailable(PostgresError):  # noqa: N818 - the name callers catch
    """PostgreSQL is not installed here or cannot run here; the message says what is missing in one line."""


def _has_binaries(directory: Path) -> bool:
    return all(os.access(directory / name, os.X_OK) for name in REQUIRED_BINARIES)


def _version_key(directory: Path) -> tuple[int, ...]:
    return tuple(int(part) for part in directory.name.split("."))


def find_bindir(lib_dir: Path = DEBIAN_LIB_DIR, path: str | None = None) -> Path:
    """The directory of the newest PostgreSQL server binaries: $DEVMIG_POSTGRES_BINDIR, else Debian's
    /usr/lib/postgresql/NN/bin (newest first), else `pg_config --bindir`, else where `initdb` is on `path`
    ($PATH by default). Raises PostgresUnavailable naming what is missing."""
    override = os.environ.get(BINDIR_ENV)
    if override:
        if not _has_binaries(Path(override)):
            raise PostgresUnavailable(f"${BINDIR_ENV}={override} does not hold {', '.join(REQUIRED_BINARIES)}")
        return Path(override)
    candidates: list[Path] = []
    if lib_dir.is_dir():
        versions = sorted((d for d in lib_dir.iterdir() if _VERSION_DIR.match(d.name)), key=_version_key)
        candidates += [d / "bin" for d in reversed(versions)]
    pg_config = shutil.which("pg_config", path=path)
    if pg_config:
        # Debian's pg_config (libpq-dev) may name a bindir without the server in it: checked below like the rest.
        with contextlib.suppress(OSError, subprocess.SubprocessError):
            out = subprocess.run([pg_config, "--bindir"], capture_output=True, text=True, timeout=10, check=True)
            candidates.append(Path(out.stdout.strip()))
    initdb = shutil.which("initdb", path=path)
    if initdb:
        candidates.append(Path(initdb).parent)
    for candidate in candidates:
        if _has_binaries(candidate):
            return candidate
    raise PostgresUnavailable(
        f"PostgreSQL is not installed: no {', '.join(REQUIRED_BINARIES)} in {lib_dir}/*/bin, pg_config --bindir "
        f"or PATH (Debian: apt-get install postgresql; or set ${BINDIR_ENV})"
    )


def default_base_dir() -> Path | None:
    """Where the server's temporary directory goes: $DEVMIG_POSTGRES_TMPDIR, else /dev/shm when it is a roomy
    writable tmpfs, else None (the system's temporary directory)."""
    override = os.environ.get(BASE_DIR_ENV)
    if override:
        return Path(override)
    try:
        stat = os.statvfs(RAM_DIR)
    except OSError:
        return None
    if os.access(RAM_DIR, os.W_OK | os.X_OK) and stat.f_bavail * stat.f_frsize >= RAM_DIR_MIN_FREE:
        return RAM_DIR
    return None


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def _conf_value(value: str) -> str:
    return "'" + value.replace("\\", "\\\\").replace("'", "''") + "'"


def _alive(pid: int) -> bool:
    """Whether `pid` still runs. A zombie counts as gone: the server is reparented to PID 1 when pg_ctl exits,
    and not every container's PID 1 reaps its orphans."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return False
    except OSError:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return True
    state = stat.rpartition(")")[2].split()[0]  # the command name may hold spaces and parentheses
    return state not in ("Z", "X")


def _log_size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0


def _log_summary(path: Path, offset: int = 0) -> str:
    """One line out of the server log from `offset` on: its errors (FATAL, PANIC, ERROR and the LOG line that says
    why, such as "could not bind"), else its last lines."""
    try:
        with path.open("rb") as file:
            file.seek(offset)
            text = file.read().decode(errors="replace")
    except OSError:
        return "(no server log)"
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    telling = [line for line in lines if re.search(r"\b(FATAL|PANIC|ERROR):|could not ", line)]
    return " | ".join(telling[:3] or lines[-3:]) or "(empty server log)"


@dataclass
class PostgresServer:
    """A running throwaway server. `url` is its admin database; `new_database()` makes a fresh one."""

    directory: Path  # the temporary directory: data/, the unix socket, server.log
    bindir: Path
    port: int
    run_as: str | None  # the system user initdb and the server run as; None: ourselves
    host: str = "127.0.0.1"
    user: str = SUPERUSER
    start_seconds: float = 0.0  # initdb + start, for benchmarks' and tests' reports
    pid: int | None = None  # the postmaster's
    _admin: psycopg.Connection[Any] | None = field(default=None, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @property
    def data_dir(self) -> Path:
        return self.directory / "data"

    @property
    def socket_dir(self) -> Path:
        return self.directory

    @property
    def log_file(self) -> Path:
        return self.directory / "server.log"

    def url_for(self, database: str) -> str:
        """The SQLAlchemy URL of `database` on this server."""
        return f"postgresql+psycopg://{self.user}@{self.host}:{self.port}/{database}"

    @property
    def url(self) -> str:
        return self.url_for(ADMIN_DATABASE)

    def _connection(self) -> psycopg.Connection[Any]:
        # One autocommit connection for CREATE/DROP DATABASE (which refuse to run in a transaction): connecting
        # costs a few milliseconds, and tests ask for a database each.
        if self._admin is None or self._admin.closed:
            try:
                self._admin = psycopg.connect(
                    host=self.host, port=self.port, user=self.user, dbname=ADMIN_DATABASE, autocommit=True
                )
            except psycopg.Error as error:
                raise PostgresError(f"cannot connect to the test server on {self.host}:{self.port}: {error}") from None
        return self._admin

    def _server_version(self) -> int:
        with self._lock:
            return self._connection().info.server_version

    def _execute(self, statement: sql.Composed, what: str) -> None:
        with self._lock:
            try:
                self._connection().execute(statement)
            except psycopg.Error as error:
                message = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
                raise PostgresError(f"{what} on the test server {self.host}:{self.port}: {message}") from None

    def new_database(self, name: str) -> str:
        """Create the empty database `name` (from template0: nothing another test left in template1) and return its
        URL. Raises PostgresError when it exists already or the name is not a plain identifier."""
        if not _DATABASE_NAME.match(name):
            raise PostgresError(
                f"database name {name!r}: expected letters, digits and _, at most 63, not a digit first"
            )
        statement = sql.SQL("CREATE DATABASE {} TEMPLATE template0").format(sql.Identifier(name))
        if self._server_version() >= 150000:
            # FILE_COPY copies template0's files instead of writing them all to the WAL: half the time (8 ms).
            statement += sql.SQL(" STRATEGY FILE_COPY")
        self._execute(statement, f"create database {name}")
        return self.url_for(name)

    def drop_database(self, name: str) -> None:
        """Drop `name` if it exists, closing the connections a test left open to it."""
        self._execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)), f"drop database {name}"
        )

    def close(self) -> None:
        with self._lock:
            if self._admin is not None:
                with contextlib.suppress(psycopg.Error):
                    self._admin.close()
                self._admin = None


def _run_as_kwargs(run_as: str | None) -> dict[str, Any]:
    if run_as is None:
        return {}
    # subprocess drops to the user itself (setgroups, setgid, setuid), as runuser would, without a dependency.
    entry = pwd.getpwnam(run_as)
    return {"user": entry.pw_uid, "group": entry.pw_gid, "extra_groups": []}


def _environment(run_as: str | None) -> dict[str, str]:
    # No PG* variable of ours (PGDATA, PGPORT, PGHOST...) may redirect the tools; messages in English for the log.
    env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
    env.update({"LC_ALL": "C", "LANG": "C", "TZ": "UTC"})
    if run_as is not None:
        entry = pwd.getpwnam(run_as)
        env.update({"HOME": entry.pw_dir, "USER": run_as, "LOGNAME": run_as})
    return env


def _run(server: PostgresServer, argv: Sequence[str], what: str, timeout: float) -> subprocess.CompletedProcess[str]:
    try:
        return subprocess.run(
            list(argv),
            cwd=server.directory,  # the server user must be able to stay in its working directory
            env=_environment(server.run_as),
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
            stdin=subprocess.DEVNULL,
            **_run_as_kwargs(server.run_as),
        )
    except subprocess.TimeoutExpired:
        raise PostgresError(f"{what} did not finish in {timeout:.0f} s: {_log_summary(server.log_file)}") from None
    except OSError as error:
        raise PostgresError(f"{what}: cannot run {argv[0]}: {error.strerror}") from None


def _first_line(result: subprocess.CompletedProcess[str]) -> str:
    lines = [line.strip() for line in (result.stderr + result.stdout).splitlines() if line.strip()]
    errors = [line for line in lines if "error" in line.lower() or "fatal" in line.lower()]
    return (errors or lines or [f"exit status {result.returncode}"])[0]


def _initdb(server: PostgresServer, settings: Mapping[str, str]) -> None:
    initdb = server.bindir / "initdb"
    argv = [str(initdb), "-D", str(server.data_dir), "-U", server.user, "--auth=trust", "--encoding=UTF8"]
    argv += ["--locale=C", "--no-sync", "--no-instructions"]  # C locale: no dependence on installed locales
    result = _run(server, argv, "initdb", timeout=120)
    if result.returncode != 0:
        raise PostgresError(f"initdb failed in {server.data_dir}: {_first_line(result)}")
    conf = dict(TEST_SETTINGS)
    conf["unix_socket_directories"] = str(server.socket_dir)
    conf.update(settings)
    with (server.data_dir / "postgresql.conf").open("a") as file:
        file.write("\n# devmig.testing.postgres: a throwaway server for tests\n")
        file.writelines(f"{key} = {_conf_value(value)}\n" for key, value in conf.items())
    # Trust, and only where nothing else can reach: the unix socket in our own 0700 directory and IPv4 loopback.
    hba = server.data_dir / "pg_hba.conf"
    hba.write_text(
        "# devmig.testing.postgres: trust on the private unix socket and on loopback only\n"
        "local all all trust\n"
        "host all all 127.0.0.1/32 trust\n"
    )
    if server.run_as is not None:  # written by us: the server must still read it, whatever our umask
        entry = pwd.getpwnam(server.run_as)
        os.chown(hba, entry.pw_uid, entry.pw_gid)


def _postmaster_pid(server: PostgresServer) -> int | None:
    try:
        first = (server.data_dir / "postmaster.pid").read_text().split("\n", 1)[0].strip()
        return int(first)
    except (OSError, ValueError):
        return None


def _start(server: PostgresServer) -> None:
    pg_ctl = str(server.bindir / "pg_ctl")
    for attempt in range(1, PORT_ATTEMPTS + 1):
        server.port = free_port()
        argv = [pg_ctl, "start", "-D", str(server.data_dir), "-l", str(server.log_file), "-w"]
        argv += ["-t", str(START_TIMEOUT), "-o", f"-p {server.port}"]
        offset = _log_size(server.log_file)  # pg_ctl appends: this attempt's lines start here
        result = _run(server, argv, "pg_ctl start", timeout=START_TIMEOUT + 10)
        if result.returncode == 0:
            server.pid = _postmaster_pid(server)
            return
        log = _log_summary(server.log_file, offset)
        if "could not bind" in log and attempt < PORT_ATTEMPTS:
            continue  # someone took the port after we probed it
        raise PostgresError(f"PostgreSQL did not start on 127.0.0.1:{server.port}: {log}")


def _stop(server: PostgresServer) -> None:
    server.close()
    pid = server.pid or _postmaster_pid(server)
    if server.data_dir.is_dir() and (server.data_dir / "postmaster.pid").exists():
        pg_ctl = str(server.bindir / "pg_ctl")
        with contextlib.suppress(PostgresError):
            _run(server, [pg_ctl, "stop", "-D", str(server.data_dir), "-m", "immediate", "-w", "-t", "20"], "stop", 30)
    if pid is not None and _alive(pid):
        # pg_ctl could not stop it (or the data directory went away first): its children follow the postmaster.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGKILL)
        deadline = time.monotonic() + 10
        while _alive(pid) and time.monotonic() < deadline:
            time.sleep(0.02)


def _system_user() -> str | None:
    """None when we may run PostgreSQL ourselves; else the unprivileged user to run it as."""
    if os.geteuid() != 0:
        return None
    try:
        pwd.getpwnam(SYSTEM_USER)
    except KeyError:
        raise PostgresUnavailable(
            f"running as root and there is no {SYSTEM_USER!r} user to run PostgreSQL as "
            "(Debian's postgresql package creates it)"
        ) from None
    return SYSTEM_USER


@contextlib.contextmanager
def postgres_server(
    *, bindir: Path | None = None, settings: Mapping[str, str] | None = None, base_dir: Path | None = None
) -> Iterator[PostgresServer]:
    """Start a throwaway PostgreSQL server and stop and remove it on exit, even on failure.

    `bindir`: the server binaries (default: `find_bindir()`); `settings`: postgresql.conf settings over
    TEST_SETTINGS (a benchmark may want more shared_buffers); `base_dir`: where the temporary directory goes
    (default: `default_base_dir()`; as root it must be reachable by the `postgres` user).
    """
    if bindir is None:
        bindir = find_bindir()
    elif not _has_binaries(bindir):
        raise PostgresUnavailable(f"{bindir} does not hold the PostgreSQL binaries {', '.join(REQUIRED_BINARIES)}")
    run_as = _system_user()
    started = time.perf_counter()
    directory = Path(
        tempfile.mkdtemp(prefix="devmig-pg-", dir=base_dir if base_dir is not None else default_base_dir())
    )
    server = PostgresServer(directory=directory, bindir=bindir, port=0, run_as=run_as)
    try:
        if run_as is not None:
            entry = pwd.getpwnam(run_as)
            os.chown(directory, entry.pw_uid, entry.pw_gid)
        _initdb(server, settings or {})
        _start(server)
        server.start_seconds = time.perf_counter() - started
        yield server
    finally:
        try:
            _stop(server)
        finally:
            shutil.rmtree(directory, ignore_errors=True)
