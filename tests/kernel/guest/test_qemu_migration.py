"""QEMU itself migrating a VM with an mtty device, inside the guest: for each ordered pair of mtty types, QEMU's
outcome is `devmig check`'s verdict on that pair.

Two QEMU processes per pair (source, and destination with `-incoming unix:...`), driven over QMP by QEMU's own
Python client; mtty judges the incoming state itself (stream magic, version, port count), QEMU reports what it
did. The figures (outcome, seconds, QEMU's errors) go to GUEST_RESULTS/qemu-migration.json and to the junit
report's properties, for docs/kernel-lab.md.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import re
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.kernel.guest.conftest import devmig
from tests.kernel.guest.qemu_vm import QEMU, Migration, migrate, running_vm
from tests.kernel.lab.guest import GUEST_RESULTS

pytestmark = pytest.mark.kernel

TYPES = ("mtty-1", "mtty-2")
RESULTS = Path(GUEST_RESULTS) / "qemu-migration.json"  # the results dir the host gets back
#: VFIO migration v2 is in QEMU from 8.0 (Debian 12's own 7.2 speaks only the removed v1)
MINIMUM_QEMU = (8, 0)


def qemu_version() -> tuple[int, ...]:
    out = subprocess.run([QEMU, "--version"], capture_output=True, text=True, timeout=60).stdout
    found = re.search(r"version (\d+)\.(\d+)", out)
    assert found, f"{QEMU} --version: {out!r}"
    return tuple(int(n) for n in found.groups())


@pytest.fixture(scope="module", autouse=True)
def _qemu_can_migrate_vfio() -> None:
    version = qemu_version()
    if version < MINIMUM_QEMU:
        pytest.fail(f"{QEMU} {version} cannot migrate VFIO devices: the lab's prepare installs QEMU >= 8.0")


def create(mtype: str, cleanup: list[str]) -> str:
    made = devmig("mdev", "create", "mtty", mtype)
    assert made.code == 0, made.err
    cleanup.append(made.out.strip())
    return made.out.strip()


def devmig_verdict(source_uuid: str, dest_type: str, tmp_path: Path) -> tuple[bool, list[str]]:
    """`devmig check -j` on the source's descriptor against the destination type's capability: (compatible, its
    findings as "code field")."""
    source, dest = tmp_path / "source.json", tmp_path / "dest.json"
    described = devmig("describe", source_uuid)
    assert described.code == 0, described.err
    source.write_text(described.out)
    capability = devmig("capabilities", "-t", dest_type, "-j")
    assert capability.code == 0, capability.err
    dest.write_text(capability.out)
    checked = devmig("check", "-j", str(source), str(dest))
    assert checked.code in (0, 1), checked.out + checked.err
    verdict = json.loads(checked.out)
    assert verdict["compatible"] is (checked.code == 0)
    return verdict["compatible"], [f"{finding['code']} {finding['field']}" for finding in verdict["findings"]]


async def qemu_migrates(source_uuid: str, dest_uuid: str, workdir: Path) -> Migration:
    incoming = f"unix:{workdir / 'migration.sock'}"
    async with (
        running_vm("dest", dest_uuid, workdir, incoming=incoming) as dest,
        running_vm("source", source_uuid, workdir) as source,
    ):
        assert (await source.status(), await dest.status()) == ("running", "inmigrate")
        return await migrate(source, dest, incoming)


def record(pair: str, verdict: bool, findings: list[str], run: Migration) -> dict[str, object]:
    load_failed = [ln.strip() for ln in run.destination_stderr.splitlines() if "load of migration failed" in ln]
    entry: dict[str, object] = {
        "pair": pair,
        "devmig_compatible": verdict,
        "devmig_findings": findings,
        "qemu_status": run.status,
        "seconds": round(run.seconds, 2),
        "source_error": run.error,
        "destination_status": run.destination_status,
        "destination_error": load_failed[-1] if load_failed else "",
        "destination_stderr": run.destination_stderr.strip().splitlines(),
        "source_status_after": run.source_status,
        "source_device_states": run.source_device_states,
        "destination_device_states": run.destination_device_states,
    }
    results = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
    results[pair] = entry
    RESULTS.write_text(json.dumps(results, indent=2) + "\n")
    print(json.dumps(entry))
    return entry


@pytest.mark.parametrize(("source_type", "dest_type"), list(itertools.product(TYPES, TYPES)))
def test_qemu_migrates_exactly_the_pairs_devmig_check_accepts(
    source_type: str,
    dest_type: str,
    cleanup: list[str],
    tmp_path: Path,
    record_property: Callable[[str, object], None],
) -> None:
    source_uuid, dest_uuid = create(source_type, cleanup), create(dest_type, cleanup)
    compatible, findings = devmig_verdict(source_uuid, dest_type, tmp_path)
    run = asyncio.run(qemu_migrates(source_uuid, dest_uuid, tmp_path))
    entry = record(f"{source_type}->{dest_type}", compatible, findings, run)
    record_property("qemu_migration", json.dumps(entry))
    assert run.status != "timeout", entry
    assert run.succeeded is compatible, entry
    # one running copy of the device, never two: VFIO_MIGRATION events say where each device was left
    if run.succeeded:
        assert run.source_status == "postmigrate"
        assert run.source_device_states[-1:] == ["stop"], entry
        assert run.destination_device_states[-1:] == ["running"], entry
    else:
        assert run.status == "failed" and run.error, entry
        assert entry["destination_error"], entry  # the destination says why it refused the state
        assert run.source_status == "running"  # the source VM carries on
        assert run.source_device_states[-1:] == ["running"], entry  # and its device is running again
        assert not {"running", "running-p2p"} & set(run.destination_device_states), entry  # the copy never ran
        assert any("nr_ports" in finding for finding in findings), entry  # devmig names mtty's own reason
