"""Agents as processes of their own (`devmig agent`), as systemd runs them: changes another process makes to a
simulated host reach them through the host's log; SIGTERM stops them with exit 0, finishing or abandoning the
publish under way; SIGKILL in the middle of a publish leaves the store with the old inventory or the new one;
SIGHUP reads the config file again; stderr follows the journal's conventions."""

from __future__ import annotations

import os
import random
import signal
import sqlite3
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import psycopg
import pytest
from sqlalchemy.engine import make_url

from devmig.fleet.store import FleetStore
from devmig.machine import open_host
from devmig.machine.lab import open_lab_host
from tests.agent.helpers import Popen, agent_process, candidates, eventually
from tests.fleet.test_freshness import assert_counts_match_rows
from tests.provision.conftest import gpu_source

GPU_TYPES = "sys/class/mdev_bus/0000:00:02.0/mdev_supported_types"
UUID = "bbbbbbbb-0000-4000-8000-000000000001"
FAST = ("--debounce", "0.02", "--max-delay", "0.2", "--retry-initial", "0.05", "--retry-max", "0.5")


@contextmanager
def agent(*args: str, env: dict[str, str] | None = None, stderr: Any = subprocess.PIPE) -> Iterator[Popen]:
    proc = agent_process(*FAST, *args, env=env, stderr=stderr)
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(timeout=30)
        if proc.stderr is not None:
            proc.stderr.close()


def stop(proc: Popen) -> tuple[int, str]:
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    return proc.returncode, err


def test_agents_in_processes_see_changes_made_by_other_processes(store_url: str) -> None:
    store = FleetStore.open(store_url)
    source = gpu_source()
    with agent("--host", "sim:beta", "--store", store_url) as beta, agent("--host", "sim:gamma", "--store", store_url):
        eventually(lambda: candidates(store, source) == {"beta", "gamma"}, "both hosts published")
        # this process creates a vGPU on beta (kept in beta's log): beta's agent sees the uevent of its replay
        open_host("sim:beta").sysfs.write(f"{GPU_TYPES}/simgpu-2G/create", UUID)
        eventually(lambda: UUID in {d.name for d in store.host("beta").devices}, "the vGPU made by another process")
        open_lab_host("sim:gamma").sim.reload_driver("simgpu", "2.0.0")
        eventually(lambda: candidates(store, source) == {"beta"}, "gamma's upgrade seen by its agent")
        code, err = stop(beta)
    assert code == 0, err
    assert "stopped" in err


def _blocked(url: str) -> int:
    """How many of the database's sessions wait for a lock."""
    parsed = make_url(url)
    with psycopg.connect(
        host=parsed.host, port=parsed.port, user=parsed.username, dbname="postgres", autocommit=True
    ) as conn:
        row = conn.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = %s AND wait_event_type = 'Lock'",
            (parsed.database,),
        ).fetchone()
    return int(row[0]) if row else 0


@contextmanager
def holding(url: str, statement: str) -> Iterator[psycopg.Connection[tuple[object, ...]]]:
    """A transaction of another connection holding the locks `statement` takes, until the block ends."""
    parsed = make_url(url)
    conn = psycopg.connect(host=parsed.host, port=parsed.port, user=parsed.username, dbname=parsed.database)
    try:
        conn.execute(statement)
        yield conn
    finally:
        conn.rollback()
        conn.close()


@pytest.mark.parametrize("stop_timeout", ["0.2", "60"])
def test_sigterm_abandons_or_finishes_the_publish_under_way(pg_database: str, stop_timeout: str) -> None:
    store = FleetStore.open(pg_database)
    with agent("--host", "sim:beta", "--store", pg_database, "--stop-timeout", stop_timeout) as proc:
        first = eventually(lambda: store.host("beta"), "the first publish")
        with holding(pg_database, "SELECT * FROM hosts WHERE name = 'beta' FOR UPDATE"):
            open_host("sim:beta").sysfs.write(f"{GPU_TYPES}/simgpu-2G/create", UUID)
            eventually(lambda: _blocked(pg_database) >= 1, "the agent's publish waiting on the lock")
            proc.send_signal(signal.SIGTERM)
            if stop_timeout == "0.2":
                _, err = proc.communicate(timeout=60)
        if stop_timeout == "60":
            _, err = proc.communicate(timeout=60)  # the lock went: the publish finishes, then the agent stops
    assert proc.returncode == 0, err
    stored = store.host("beta")
    if stop_timeout == "0.2":
        assert "abandoned" in err
        assert stored.generation == first.generation and UUID not in {d.name for d in stored.devices}
    else:
        assert "abandoned" not in err
        assert stored.generation == (first.generation or 0) + 1 and UUID in {d.name for d in stored.devices}
    assert_counts_match_rows(store)


def test_sigkill_in_the_middle_of_a_publish_leaves_the_old_inventory(pg_database: str) -> None:
    store = FleetStore.open(pg_database)
    with agent("--host", "sim:beta", "--store", pg_database) as proc:
        first = eventually(lambda: store.host("beta"), "the first publish")
        # the documents' rows locked: a driver upgrade's publish writes the host's types, then waits to move the
        # documents' counts, half done, in its transaction
        with holding(pg_database, "SELECT * FROM capabilities FOR UPDATE"):
            open_lab_host("sim:beta").sim.reload_driver("simgpu", "1.3.0")
            eventually(lambda: _blocked(pg_database) >= 1, "the publish waiting half-way")
            proc.kill()
            proc.wait(timeout=30)
        stored = store.host("beta")
        assert stored.generation == first.generation
        assert {str(t.capability.software_version) for t in stored.types if t.parent == "0000:00:02.0"} == {"1.2.0"}
        assert_counts_match_rows(store)
    # a new agent publishes the new inventory whole
    with agent("--host", "sim:beta", "--store", pg_database):
        eventually(
            lambda: (
                {str(t.capability.software_version) for t in store.host("beta").types if t.parent == "0000:00:02.0"}
                == {"1.3.0"}
            ),
            "the upgrade published by the next agent",
        )
    assert_counts_match_rows(store)


def test_sigkill_at_random_moments_on_sqlite_never_leaves_half_an_inventory(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'fleet.db'}"
    store = FleetStore.open(url)
    rng = random.Random(7)
    host = open_lab_host("sim:beta")
    releases = ["1.3.0", "1.2.0"]
    for round_ in range(4):
        with agent("--host", "sim:beta", "--store", url) as proc:
            before = eventually(lambda: store.host("beta"), "a publish")
            host.sim.reload_driver("simgpu", releases[round_ % 2])
            # kill somewhere around the publish the upgrade starts
            eventually(lambda: (proc.poll() is None) and rng.random() < 0.2, "a moment")
            proc.kill()
            proc.wait(timeout=30)
        stored = store.host("beta")
        versions = {str(t.capability.software_version) for t in stored.types if t.parent == "0000:00:02.0"}
        assert len(versions) == 1, f"half an inventory: {versions}"
        assert stored.generation in (before.generation, (before.generation or 0) + 1)
        assert_counts_match_rows(store)
        with sqlite3.connect(tmp_path / "fleet.db") as db:
            assert db.execute("PRAGMA integrity_check").fetchone() == ("ok",)


def test_sighup_reads_the_config_file_again(tmp_path: Path, store_url: str) -> None:
    store = FleetStore.open(store_url)
    config = tmp_path / "agent.toml"
    config.write_text(f'store = "{store_url}"\nname = "first-name"\nhost = "sim:beta"\n')
    log = tmp_path / "stderr"
    with log.open("w") as out, agent("--config", str(config), stderr=out) as proc:
        eventually(lambda: store.host("first-name"), "published under the file's name")
        config.write_text(f'store = "{store_url}"\nname = "second-name"\nhost = "sim:beta"\n')
        proc.send_signal(signal.SIGHUP)
        eventually(lambda: store.host("second-name"), "published under the new name after SIGHUP")
        # a file that became wrong is reported and the settings in use are kept
        config.write_text('heartbeat-interval = "soon"\n')
        proc.send_signal(signal.SIGHUP)
        eventually(lambda: "the settings in use are kept" in log.read_text(), "the bad file reported")
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=60) == 0
    err = log.read_text()
    assert "heartbeat-interval = 'soon'; expected a number of seconds above 0" in err


def test_the_log_follows_the_journal_conventions_when_connected_to_it(tmp_path: Path, store_url: str) -> None:
    FleetStore.open(store_url)
    log = tmp_path / "stderr"
    with log.open("w") as out:
        st = os.fstat(out.fileno())
        proc = agent_process(
            "--host", "sim:beta", "--store", store_url, env={"JOURNAL_STREAM": f"{st.st_dev}:{st.st_ino}"}, stderr=out
        )
        try:
            eventually(lambda: "published" in log.read_text(), "the first publish logged")
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(timeout=60) == 0
        finally:
            if proc.poll() is None:
                proc.kill()
    lines = log.read_text().splitlines()
    assert lines and all(line.startswith(("<6>", "<4>", "<3>", "<7>")) for line in lines), lines
    assert any(line.startswith("<6>beta: published") for line in lines), lines


def test_bad_settings_are_one_line_and_exit_2(tmp_path: Path) -> None:
    config = tmp_path / "agent.toml"
    config.write_text("debounce = -1\n")
    for args, expected in (
        (["--config", str(config)], f"config file {config}: debounce = -1; expected a number of seconds (0: off)"),
        (["--nfd-dir", str(tmp_path / "missing")], "no such directory: expected nfd-worker's features.d"),
        (["--host", "sim:nowhere"], "lab default: no host nowhere"),
        (["--host", "sim:beta", "--metrics-address", "nonsense"], "metrics address 'nonsense': expected HOST:PORT"),
    ):
        proc = agent_process(*args, "--store", f"sqlite:///{tmp_path / 'f.db'}")
        _, err = proc.communicate(timeout=60)
        assert proc.returncode == 2, err
        assert expected in err and "Traceback" not in err, err
