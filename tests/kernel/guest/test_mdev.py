"""The mdev lifecycle through devmig on the kernel's mtty sample, and the refusals the kernel gives."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.kernel.guest.conftest import devmig

pytestmark = pytest.mark.kernel

TYPES = Path("/sys/class/mdev_bus/mtty/mdev_supported_types")


def free(mtype: str) -> int:
    return int((TYPES / mtype / "available_instances").read_text())


def test_create_describe_remove(cleanup: list[str]) -> None:
    before = {t: free(t) for t in ("mtty-1", "mtty-2")}
    uuids = {}
    for mtype in ("mtty-1", "mtty-2"):
        created = devmig("mdev", "create", "mtty", mtype, "-j")
        assert created.code == 0, created.err
        uuids[mtype] = json.loads(created.out)["uuid"]
        cleanup.append(uuids[mtype])
        assert Path(f"/sys/bus/mdev/devices/{uuids[mtype]}").exists()
    # mtty counts serial ports: a single-port device takes one, a dual-port one two
    assert free("mtty-1") == before["mtty-1"] - 3 and free("mtty-2") < before["mtty-2"]
    for mtype, ports in (("mtty-1", 1), ("mtty-2", 2)):
        described = devmig("describe", uuids[mtype])
        assert described.code == 0, described.err
        desc = json.loads(described.out)
        assert desc["type"] == mtype and desc["model"] == "kernel.org/samples/mtty"
        assert desc["params"] == {"nr_ports": ports} and desc["confidence"] == "profile"
        assert desc["software_version"] == "0.1.0"  # mtty's MODULE_VERSION "0.1"
    for mtype in ("mtty-1", "mtty-2"):
        removed = devmig("mdev", "remove", uuids[mtype])
        assert removed.code == 0, removed.err
        assert not Path(f"/sys/bus/mdev/devices/{uuids[mtype]}").exists()
    assert {t: free(t) for t in ("mtty-1", "mtty-2")} == before


def test_the_kernel_refusals_are_clear(cleanup: list[str]) -> None:
    uuid = "0e2bd5f3-7d6b-4c4e-9d57-4d27a1c1f001"
    assert devmig("mdev", "create", "mtty", "mtty-2", "--uuid", uuid).code == 0
    cleanup.append(uuid)
    again = devmig("mdev", "create", "mtty", "mtty-2", "--uuid", uuid)
    assert again.code == 1 and f"mdev {uuid}: already exists" in again.err
    unknown = devmig("mdev", "create", "mtty", "mtty-9")
    assert unknown.code == 2 and "does not support type mtty-9" in unknown.err
    # fill the parent: mtty has 24 ports; then the next device is refused by the kernel's own count
    while free("mtty-2") > 0:
        made = devmig("mdev", "create", "mtty", "mtty-2")
        assert made.code == 0, made.err
        cleanup.append(made.out.strip())
    full = devmig("mdev", "create", "mtty", "mtty-2")
    assert full.code == 1 and "no free instance" in full.err
    assert "Traceback" not in again.err + unknown.err + full.err


def test_check_predicts_the_mtty_refusal(cleanup: list[str], tmp_path: Path) -> None:
    """mtty refuses to resume an mtty-2 state into an mtty-1 device (nr_ports differs); devmig says so first."""
    made = devmig("mdev", "create", "mtty", "mtty-2")
    cleanup.append(made.out.strip())
    source = tmp_path / "source.json"
    source.write_text(devmig("describe", made.out.strip()).out)
    for mtype, expected in (("mtty-2", 0), ("mtty-1", 1)):
        dest = tmp_path / f"{mtype}.json"
        dest.write_text(devmig("capabilities", "-t", mtype, "-j").out)
        verdict = devmig("check", "-j", str(source), str(dest))
        assert verdict.code == expected, verdict.out + verdict.err
