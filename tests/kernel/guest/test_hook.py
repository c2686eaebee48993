"""devmig's libvirt hook on the real kernel, run as libvirt runs it (its drop-in, libvirt's environment, four
arguments, the XML on stdin): an incoming VM's mtty device is prepared as a real mdev and the XML names it; release
takes it away; a refusal leaves no mdev behind. The hook's time is recorded beside mdevctl's for the same mdev."""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

import pytest

from devmig.host.sysfs import SysfsRoot
from devmig.libvirt.domain import parse_domain
from devmig.libvirt.install import hook_command, install
from devmig.machine import KernelHost
from tests.domains.builders import annotated_xml, mdev_hostdev
from tests.kernel.guest.conftest import devmig, mdevctl

pytestmark = pytest.mark.kernel

TYPES = Path("/sys/class/mdev_bus/mtty/mdev_supported_types")
DEVICES = Path("/sys/bus/mdev/devices")
LIBVIRT_ENV = {"LC_ALL": "C", "PATH": "/sbin:/usr/sbin:/bin:/usr/bin", "HOME": "/"}
RESULTS = Path("/tmp/devmig-results")
PEER_UUID = "5a3c9e1f-0b2d-4e6f-8a1c-3d5e7f9b1c77"


def free(mtype: str) -> int:
    return int((TYPES / mtype / "available_instances").read_text())


def source_domain(cleanup: list[str], version: str | None = None) -> tuple[str, str]:
    """A real mtty-2 mdev as the source's, and the domain XML that leaves its host, annotated with its descriptor."""
    made = devmig("mdev", "create", "mtty", "mtty-2")
    assert made.code == 0, made.err
    uuid = made.out.strip()
    cleanup.append(uuid)
    return uuid, annotated_xml(KernelHost(SysfsRoot("/")), mdev_hostdev(uuid), version=version, domain_type="kvm")


def drop_in(tmp_path: Path) -> Path:
    return install(hook_command(host=None, state_dir=str(tmp_path / "state"), config=None), hooks_dir=tmp_path).path


def call(hook: Path, *args: str, xml: str) -> tuple[subprocess.CompletedProcess[str], float]:
    started = time.perf_counter()
    done = subprocess.run(
        [str(hook), "vm1", *args], input=xml, env=LIBVIRT_ENV, capture_output=True, text=True, timeout=120
    )
    return done, time.perf_counter() - started


def test_the_hook_prepares_a_real_mdev_rewrites_the_xml_and_releases_it(tmp_path: Path, cleanup: list[str]) -> None:
    source, xml = source_domain(cleanup)
    # the source's mdev lives on the source host, not here (an unused mdev the XML names here would be used as it
    # is: tests/kernel/guest/test_libvirt_migration.py and tests/domains/test_hook_named.py)
    (DEVICES / source / "remove").write_text("1")
    hook = drop_in(tmp_path)
    before = free("mtty-2")
    begin, begin_s = call(hook, "migrate", "begin", "-", xml=xml)
    assert begin.returncode == 0, begin.stderr
    (hostdev,) = parse_domain(begin.stdout).hostdevs
    cleanup.append(hostdev.address)
    assert hostdev.address != source and (DEVICES / hostdev.address).exists()
    assert (DEVICES / hostdev.address / "mdev_type").resolve().name == "mtty-2"
    assert free("mtty-2") == before - 1
    started, _ = call(hook, "started", "begin", "-", xml=begin.stdout)
    assert started.returncode == 0, started.stderr
    # the VM left again by migration: the source side's release takes the device away
    release, release_s = call(hook, "release", "end", "migrated", xml=begin.stdout)
    assert release.returncode == 0, release.stderr
    assert not (DEVICES / hostdev.address).exists() and free("mtty-2") == before
    # the peer: what a hook that trusts the type name does, mdevctl making and removing the same kind of mdev
    started_at = time.perf_counter()
    made = mdevctl("start", "-u", PEER_UUID, "-p", "mtty", "--type", "mtty-2")
    peer_start = time.perf_counter() - started_at
    cleanup.append(PEER_UUID)
    assert made.code == 0, made.err
    started_at = time.perf_counter()
    assert mdevctl("stop", "-u", PEER_UUID).code == 0
    peer_stop = time.perf_counter() - started_at
    if RESULTS.is_dir():
        figures = {"hook migrate begin": begin_s, "hook release end": release_s}
        figures |= {"mdevctl start": peer_start, "mdevctl stop": peer_stop}
        (RESULTS / "hook-latency.json").write_text(json.dumps(figures))


def test_a_refused_incoming_vm_leaves_no_mdev_behind(tmp_path: Path, cleanup: list[str]) -> None:
    """A source whose driver is a major version ahead (2.0.0): no mtty type here takes it."""
    _, xml = source_domain(cleanup, version="2.0.0")
    hook = drop_in(tmp_path)
    before = sorted(p.name for p in DEVICES.iterdir())
    refused, _ = call(hook, "migrate", "begin", "-", xml=xml)
    assert refused.returncode == 1 and refused.stdout == ""
    assert "cannot take domain vm1" in refused.stderr and "nothing was prepared" in refused.stderr
    assert "mtty-2" in refused.stderr, refused.stderr
    assert sorted(p.name for p in DEVICES.iterdir()) == before
