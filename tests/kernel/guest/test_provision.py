"""plan, prepare (with --persist, seen by mdevctl) and release on the real kernel's mtty; every fault point the real
sysfs allows; prepares racing for the last free instances of a real parent."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import pytest

from devmig.errors import DevmigError
from devmig.host.sysfs import SysfsRoot
from devmig.machine import KernelHost
from devmig.model.descriptor import DeviceDescriptor
from devmig.provision import NoCapacityError, Prepared, prepare, release
from devmig.testing.faults import FaultySysfs, host_state
from tests.kernel.guest.conftest import devmig, mdevctl

pytestmark = pytest.mark.kernel

TYPES = Path("/sys/class/mdev_bus/mtty/mdev_supported_types")
NEW = "5a3c9e1f-0b2d-4e6f-8a1c-3d5e7f9b1c01"


@pytest.fixture(autouse=True)
def state_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DEVMIG_STATE_DIR", str(tmp_path / "state"))


def free(mtype: str) -> int:
    return int((TYPES / mtype / "available_instances").read_text())


def source_file(tmp_path: Path, cleanup: list[str]) -> Path:
    made = devmig("mdev", "create", "mtty", "mtty-2")
    assert made.code == 0, made.err
    cleanup.append(made.out.strip())
    described = devmig("describe", made.out.strip())
    assert described.code == 0, described.err
    path = tmp_path / "source.json"
    path.write_text(described.out)
    return path


def test_plan_prepare_persist_release(tmp_path: Path, cleanup: list[str]) -> None:
    src = source_file(tmp_path, cleanup)
    planned = devmig("plan", str(src), "-j")
    assert planned.code == 0, planned.err
    plan = json.loads(planned.out)
    assert [(c["parent"], c["type"], c["level"]) for c in plan["candidates"]] == [("mtty", "mtty-2", "identical")]
    (mtty1,) = plan["rejected"]
    assert mtty1["type"] == "mtty-1" and "parameter nr_ports=2" in " ".join(mtty1["reasons"])
    done = devmig("prepare", str(src), "-u", NEW, "--persist", "--source-id", cleanup[0], "-j")
    assert done.code == 0, done.err
    cleanup.append(NEW)
    prepared = json.loads(done.out)
    assert prepared["mapping"] == {"target_mdevs": {cleanup[0]: NEW}} and prepared["params"] == {}
    assert Path(f"/sys/bus/mdev/devices/{NEW}").exists()
    # mdevctl, libvirt's backend, sees the definition devmig wrote
    defined = mdevctl("list", "-d")
    assert f"{NEW} mtty mtty-2 auto" in defined.out, defined.out + defined.err
    assert json.loads(devmig("prepare", str(src), "-u", NEW, "-j").out)["existing"] is True
    released = devmig("release", NEW)
    assert released.code == 0, released.err
    assert not Path(f"/sys/bus/mdev/devices/{NEW}").exists()
    assert not Path(f"/etc/mdevctl.d/mtty/{NEW}").exists()
    assert NEW not in mdevctl("list", "-d").out


def test_every_fault_point_the_real_sysfs_allows(tmp_path: Path, cleanup: list[str]) -> None:
    source = DeviceDescriptor.model_validate_json(source_file(tmp_path, cleanup).read_text())
    root = SysfsRoot("/")
    points = 0
    while True:
        before = host_state(root)
        faulty = FaultySysfs(root, fail_at=points + 1)
        try:
            done = prepare(source, KernelHost(faulty), uuid=NEW, persist=True)
        except DevmigError:
            done = None
        if not faulty.hit:
            assert done is not None
            release(done.id, KernelHost(root))
            assert host_state(root) == before
            break
        points += 1
        assert done is None and host_state(root) == before, f"fault point {points}: {faulty.made}"
    print(f"\n  real sysfs: {points} fault points (create, the mdevctl definition), host unchanged after each")
    assert points == 2


def test_racing_prepares_get_exactly_the_free_instances(tmp_path: Path, cleanup: list[str]) -> None:
    source = DeviceDescriptor.model_validate_json(source_file(tmp_path, cleanup).read_text())
    while free("mtty-2") > 2:  # leave two
        made = devmig("mdev", "create", "mtty", "mtty-2")
        assert made.code == 0, made.err
        cleanup.append(made.out.strip())
    results: list[Prepared | DevmigError] = []
    gate = threading.Barrier(5)

    def racer() -> None:
        gate.wait()
        try:
            results.append(prepare(source, KernelHost(SysfsRoot("/"))))
        except DevmigError as exc:
            results.append(exc)

    threads = [threading.Thread(target=racer) for _ in range(5)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    won = [r for r in results if isinstance(r, Prepared)]
    cleanup.extend(p.device for p in won)
    assert len(won) == 2 and free("mtty-2") == 0
    assert all(isinstance(r, NoCapacityError) for r in results if not isinstance(r, Prepared)), results
