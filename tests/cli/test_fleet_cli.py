"""`devmig inventory`, `devmig place` and `devmig claim` as processes, on a store of the lab's hosts."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

import pytest

from tests.cli.conftest import run_devmig

SOURCE = "6f1c0a2e-3b4d-4c5e-8f90-a1b2c3d4e5f6"


@pytest.fixture
def store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    url = f"sqlite:///{tmp_path / 'fleet.db'}"
    monkeypatch.setenv("DEVMIG_STORE", url)
    for host in ("alpha", "beta", "gamma", "delta", "zeta"):
        published = run_devmig("inventory", "publish", "--host", f"sim:{host}")
        assert published.code == 0, published.err
        assert published.out.startswith(f"published {host} to sqlite:///")
    return url


def source() -> str:
    described = run_devmig("describe", SOURCE, "--host", "sim:alpha")
    assert described.code == 0, described.err
    return described.out


def test_inventory_show(store: str) -> None:
    listed = run_devmig("inventory", "show")
    assert listed.code == 0 and [line.split()[0] for line in listed.out.splitlines()[1:]] == [
        "alpha",
        "beta",
        "delta",
        "gamma",
        "zeta",
    ]
    beta = run_devmig("inventory", "show", "beta", "-j")
    (host,) = json.loads(beta.out)["hosts"]
    assert host["name"] == "beta" and any(t["type"] == "simgpu-2G" and t["available"] == 4 for t in host["types"])
    text = run_devmig("inventory", "show", "beta")
    assert "simgpu-2G" in text.out and "devmig.sim/gpu" in text.out
    missing = run_devmig("inventory", "show", "omega")
    assert missing.code == 2 and "host omega: not in store" in missing.err


def test_place_and_claim(store: str) -> None:
    placed = run_devmig("place", "-", "--exclude", "alpha", stdin=source())
    assert placed.code == 0, placed.err
    lines = placed.out.splitlines()
    assert lines[0].startswith("source: vfio-pci simgpu-2G model devmig.sim/gpu version 1.2.0")
    section = lines[lines.index("candidates, best first:") + 2 : lines.index("refused, by reason:")]
    rows = [line.split() for line in section]
    assert [r[1] for r in rows] == ["beta", "gamma"]
    assert "refused, by reason:" in placed.out and "minor-older" in placed.out and "no-free-instance" in placed.out
    as_json = json.loads(run_devmig("place", "-", "-j", "--exclude", "alpha", "-n", "1", stdin=source()).out)
    assert [c["host"] for c in as_json["candidates"]] == ["beta"] and as_json["claim"] is None
    claims = []
    for _ in range(5):
        claimed = json.loads(run_devmig("place", "-", "-j", "--exclude", "alpha", "--claim", "60", stdin=source()).out)
        claims.append(claimed["claim"])
    # identical beta ranks before compatible gamma: its 4 free instances first, then gamma
    assert [c["host"] for c in claims] == ["beta", "beta", "beta", "beta", "gamma"]
    listed = json.loads(run_devmig("claim", "list", "-j").out)["claims"]
    assert len(listed) == 5
    released = run_devmig("claim", "release", claims[0]["id"])
    assert released.code == 0 and released.out.startswith(f"released {claims[0]['id']} (beta")
    again = run_devmig("claim", "release", claims[0]["id"])
    assert again.code == 2 and "released already" in again.err
    assert run_devmig("claim", "purge").out == "purged 0 expired claims\n"


def test_nothing_fits_is_exit_1(store: str) -> None:
    descriptor = json.loads(source())
    descriptor["software_version"] = "9.0.0"
    placed = run_devmig("place", "-", stdin=json.dumps(descriptor))
    assert placed.code == 1 and "no host of the fleet can take it" in placed.out and "major-mismatch" in placed.out


def test_bad_stores_are_one_line() -> None:
    bad = run_devmig("inventory", "show", "--store", "postgresql://devmig:secret@127.0.0.1:9/fleet")
    assert bad.code == 1 and "secret" not in bad.err and bad.err.count("\n") == 1
    worse = run_devmig("inventory", "show", "--store", "mysql://x@y/z")
    assert worse.code == 2 and worse.err.count("\n") == 1


def test_inventory_show_says_how_fresh(store: str) -> None:
    from devmig.fleet.store import FleetStore

    with FleetStore.open(store) as opened:
        opened.heartbeat("zeta", now=time.time() - 1000)
    listed = run_devmig("inventory", "show").out.splitlines()
    assert listed[0].split() == ["HOST", "TYPES", "FREE", "DEVICES", "KERNEL", "GEN", "LAST", "SEEN"]
    rows = {line.split()[0]: line for line in listed[1:]}
    assert re.search(r" 1 +\d+ s ago$", rows["beta"])  # fresh: published when the fixture made the store
    assert re.search(r" 1 +10\d\d s ago \(stale\)$", rows["zeta"])
    beta = run_devmig("inventory", "show", "beta").out.splitlines()[0]
    assert re.fullmatch(r"host beta: kernel \S+, generation 1, last seen \d+ s ago, published \d+ s ago", beta)
    (zeta,) = json.loads(run_devmig("inventory", "show", "zeta", "-j").out)["hosts"]
    assert zeta["generation"] == 1 and zeta["stale"] is True and 1000 <= zeta["age"] < 1060
    assert zeta["last_seen"] < zeta["published"]
    fresh = json.loads(run_devmig("inventory", "show", "-j").out)
    assert fresh["stale_after"] == 600 and [h["name"] for h in fresh["hosts"] if h["stale"]] == ["zeta"]


def test_heartbeat(store: str) -> None:
    beat = run_devmig("inventory", "heartbeat", "--host", "sim:beta")
    assert beat.code == 0 and beat.out == f"heartbeat of beta to {store}\n"
    named = json.loads(run_devmig("inventory", "heartbeat", "--name", "gamma", "-j").out)
    assert named["host"] == "gamma" and named["store"] == store and abs(named["last_seen"] - time.time()) < 60
    (gamma,) = json.loads(run_devmig("inventory", "show", "gamma", "-j").out)["hosts"]
    assert gamma["last_seen"] == named["last_seen"] and gamma["generation"] == 1
    unknown = run_devmig("inventory", "heartbeat", "--name", "omega")
    assert unknown.code == 2 and unknown.out == ""
    assert unknown.err == (
        f"devmig: error: host omega: not in store {store}, so it has no heartbeat to record "
        "(devmig inventory publish adds it)\n"
    )


def test_place_leaves_out_stale_hosts(store: str) -> None:
    from devmig.fleet.store import FleetStore

    with FleetStore.open(store) as opened:
        opened.heartbeat("beta", now=time.time() - 1000)  # beta, the best candidate, falls silent
    placed = run_devmig("place", "-", "--exclude", "alpha", stdin=source())
    assert placed.code == 0, placed.err
    lines = placed.out.splitlines()
    assert lines[1].endswith("; hosts seen in the last 600 s")
    section = lines[lines.index("candidates, best first:") + 2 : lines.index("refused, by reason:")]
    assert [line.split()[1] for line in section] == ["gamma"]
    (stale,) = [line for line in lines if " stale " in line]
    assert re.fullmatch(
        r" +[1-9]\d* +1 +stale +stale: last seen 10\d\d s ago, host beta \(hosts are left out 600 s .*", stale
    )
    as_json = json.loads(run_devmig("place", "-", "-j", "--exclude", "alpha", stdin=source()).out)
    assert as_json["stale_after"] == 600 and [r["hosts"] for r in as_json["refused"] if r["code"] == "stale"] == [1]
    assert [c["host"] for c in as_json["candidates"]] == ["gamma"] and as_json["candidates"][0]["generation"] == 1
    never = run_devmig("place", "-", "--exclude", "alpha", "--stale-after", "never", stdin=source())
    assert "every host, however long ago it was seen" in never.out and " stale " not in never.out
    assert [line.split()[1] for line in never.out.splitlines()[4:6]] == ["beta", "gamma"]
    longer = json.loads(
        run_devmig("place", "-", "-j", "--exclude", "alpha", "--stale-after", "3600", stdin=source()).out
    )
    assert longer["stale_after"] == 3600 and [c["host"] for c in longer["candidates"]] == ["beta", "gamma"]
    bad = run_devmig("place", "-", "--stale-after", "soon", stdin=source())
    assert (
        bad.code == 2 and bad.err == "devmig: error: stale-after 'soon': expected seconds (a number >= 0) or 'never'\n"
    )
    # every host stale: nothing can take it, and the reason says so
    with FleetStore.open(store) as opened:
        for host in ("alpha", "gamma", "delta", "zeta"):
            opened.heartbeat(host, now=time.time() - 1000)
    none = run_devmig("place", "-", stdin=source())
    assert none.code == 1 and "no host of the fleet can take it" in none.out and "stale: last seen" in none.out
