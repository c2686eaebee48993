"""`devmig inventory`, `devmig place` and `devmig claim` as processes, on a store of the lab's hosts."""

from __future__ import annotations

import json
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
