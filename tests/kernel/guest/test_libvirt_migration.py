"""libvirt's own live migration of a VM with a real mtty mdev, between two libvirt daemons in the guest, with
devmig's hook installed on both by `devmig libvirt install-hook` (tests/kernel/guest/libvirt_hosts.py):

(a) a compatible VM lands on the mdev the destination's hook prepared and the source lets its device go;
(b) an incompatible one is refused by the hook before QEMU starts on the destination, with devmig's reasons in
    virsh's error, the source still running and the destination as it was;
(c) the same migration without the hook fails late, inside QEMU, when mtty refuses the state;
(d) a failure after the hook prepared (the destination's QEMU killed, the job aborted) releases what it prepared;
(e) `devmig libvirt preflight` on the source names (b)'s reasons before anything starts.

The times go to GUEST_RESULTS/libvirt-migration.json for docs/kernel-lab.md and docs/performance.md.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TypeVar

import pytest

from devmig.libvirt.domain import parse_domain
from tests.kernel.guest.conftest import devmig, devmig_process
from tests.kernel.guest.libvirt_hosts import LibvirtHost, mtty_domain
from tests.kernel.lab.guest import GUEST_RESULTS

pytestmark = pytest.mark.kernel

T = TypeVar("T")

TYPES = Path("/sys/class/mdev_bus/mtty/mdev_supported_types")
DEVICES = Path("/sys/bus/mdev/devices")
RESULTS = Path(GUEST_RESULTS) / "libvirt-migration.json"
FIGURES: dict[str, object] = {}
#: what libvirt answered when a query-migrate through it was refused during a migration
QUERY_ERRORS: list[str] = []


def mdevs() -> set[str]:
    return {p.name for p in DEVICES.iterdir()} if DEVICES.is_dir() else set()


def mdev_type(uuid: str) -> str:
    return (DEVICES / uuid / "mdev_type").resolve().name


def free(mtype: str) -> int:
    return int((TYPES / mtype / "available_instances").read_text())


def until(what: str, test: Callable[[], bool], timeout: float = 60, detail: Callable[[], str] = str) -> None:
    deadline = time.monotonic() + timeout
    while not test():
        if time.monotonic() > deadline:
            pytest.fail(f"not within {timeout:.0f} s: {what}; {detail()}")
        time.sleep(0.2)


def raw_stats(host: LibvirtHost, name: str) -> dict[str, str]:
    """The domain's current job statistics as libvirt's typed parameters (virsh domjobinfo --rawstats)."""
    out = host.virsh("domjobinfo", name, "--rawstats").out
    return dict(line.split(": ", 1) for line in out.splitlines() if ": " in line)


def watched(source: LibvirtHost, name: str, argv: list[str]) -> tuple[subprocess.CompletedProcess[str], float, int]:
    """Run a migration while polling the source's QEMU (query-migrate through libvirt) for the bytes of VFIO
    device state it sent: (the command's result, its seconds, the most VFIO bytes QEMU reported)."""
    started = time.perf_counter()
    running = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    vfio = 0
    while running.poll() is None:
        asked = source.virsh("qemu-monitor-command", name, '{"execute":"query-migrate"}', timeout=30)
        if asked.code == 0:
            reply = json.loads(asked.out).get("return", {})
            vfio = max(vfio, int(reply.get("vfio", {}).get("transferred", 0)))
        else:
            QUERY_ERRORS.append(asked.err.strip()[:200])
        time.sleep(0.2)
    out, err = running.communicate()
    return subprocess.CompletedProcess(argv, running.returncode, out, err), time.perf_counter() - started, vfio


def state_of(host: LibvirtHost) -> str:
    return f"{host.name}: mdevs {sorted(mdevs())}, claims {[p.name for p in host.claims()]}, domains " + str(
        host.domains(inactive=True)
    )


def install_hook(host: LibvirtHost) -> None:
    done = devmig("libvirt", "install-hook", "--hooks-dir", str(host.hooks_dir), "--state-dir", str(host.state_dir))
    assert done.code == 0, done.err


@pytest.fixture(scope="module")
def hosts() -> Iterator[tuple[LibvirtHost, LibvirtHost]]:
    pair = LibvirtHost("hosta"), LibvirtHost("hostb")
    started = time.perf_counter()
    try:
        for host in pair:
            install_hook(host)  # before the daemon starts: libvirt looks for hooks when it starts
            host.start()
        FIGURES["daemons_start_s"] = round(time.perf_counter() - started, 2)
        yield pair
    finally:
        for host in pair:
            host.stop()
        RESULTS.parent.mkdir(parents=True, exist_ok=True)
        RESULTS.write_text(json.dumps(FIGURES, indent=2, sort_keys=True) + "\n")


@pytest.fixture
def scratch(hosts: tuple[LibvirtHost, LibvirtHost]) -> Iterator[list[str]]:
    """Domains a test made (forgotten on both hosts after it), and every mdev made during it removed."""
    names: list[str] = []
    before = mdevs()
    yield names
    for host in hosts:
        for name in names:
            host.forget(name)
    for uuid in mdevs() - before:
        (DEVICES / uuid / "remove").write_text("1")
    for host in hosts:  # a failed test's claims must not reach the next one
        shutil.rmtree(host.state_dir / "hosts", ignore_errors=True)


def hook_calls(host: LibvirtHost) -> list[str]:
    log = host.dir / "log" / "libvirtd.log"
    text = log.read_text(errors="replace") if log.exists() else ""
    return [line[-160:] for line in text.splitlines() if "hook" in line.lower()][-12:]


def create(mtype: str) -> str:
    made = devmig("mdev", "create", "mtty", mtype)
    assert made.code == 0, made.err
    return made.out.strip()


def start(host: LibvirtHost, name: str, uuid: str, devices: list[str], scratch: list[str]) -> None:
    scratch.append(name)
    path = host.dir / f"{name}.xml"
    path.write_text(mtty_domain(name, uuid, devices))
    made = host.virsh("create", str(path))
    assert made.code == 0, made.err
    annotated = devmig("libvirt", "annotate", name, "-c", host.uri)
    assert annotated.code == 0, annotated.err


def migrate(
    source: LibvirtHost, name: str, dest: LibvirtHost, port: int, *extra: str
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(source.migrate_argv(name, dest, port, *extra), capture_output=True, text=True, timeout=300)


def timed(call: Callable[[], T]) -> tuple[T, float]:
    started = time.perf_counter()
    done = call()
    return done, round(time.perf_counter() - started, 2)


def hostdev_addresses(host: LibvirtHost, name: str) -> list[str]:
    dumped = host.virsh("dumpxml", name)
    assert dumped.code == 0, dumped.err
    return [h.address for h in parse_domain(dumped.out).hostdevs]


def test_a_compatible_vm_lands_on_the_mdev_the_hook_prepared_and_the_source_lets_go(
    hosts: tuple[LibvirtHost, LibvirtHost], scratch: list[str]
) -> None:
    a, b = hosts
    source = create("mtty-2")
    start(a, "vm-a", "5b0c3a9e-7d21-4e8f-9a6b-2c4d6e8f0a11", [source], scratch)
    there, there_s, vfio_bytes = watched(a, "vm-a", a.migrate_argv("vm-a", b, 49152))
    assert there.returncode == 0, there.stderr
    # hostb's QEMU loaded mtty's device state through VFIO (its trace, in the domain's log on hostb)
    loaded = [line for line in b.qemu_log("vm-a").read_text().splitlines() if ":vfio_load_state_device_data" in line]
    sizes = [int(m.group(1)) for m in (re.search(r" size (\d+) ret 0$", line.rstrip()) for line in loaded) if m]
    # every load succeeded, and the bytes are mtty-2's whole state: 24 + 36 per port (MIG_DATA_SIZE, test_vfio.py)
    assert len(sizes) == len(loaded) and sum(sizes) == 24 + 36 * 2, loaded
    FIGURES["vfio_trace_on_hostb"] = loaded
    assert "vm-a" in b.domains() and "vm-a" not in a.domains()
    (landed,) = hostdev_addresses(b, "vm-a")
    assert landed != source and mdev_type(landed) == "mtty-2"  # the hook's own mdev, of the source's type
    (claim_file,) = b.claims()
    claim = json.loads(claim_file.read_text())
    assert claim["owner"] == "5b0c3a9e-7d21-4e8f-9a6b-2c4d6e8f0a11" and claim["complete"] and claim["started"]
    # back to hosta with devmig's own command: preflight against hosta's types, annotate, libvirt's migration
    caps = a.dir / "capabilities.json"
    described = devmig("capabilities", "-j")
    assert described.code == 0, described.err
    caps.write_text(described.out)
    back, back_s = timed(
        lambda: devmig_process(
            "libvirt",
            "migrate",
            "vm-a",
            a.uri,
            "-c",
            b.uri,
            "--to",
            "hosta",
            "--dest-capabilities",
            str(caps),
            "--migrate-uri",
            "tcp://127.0.0.1:49153",
            "--listen-address",
            "127.0.0.1",
        )
    )
    assert back.code == 0, back.out + back.err
    assert "vm-a" in a.domains() and "vm-a" not in b.domains()
    (home,) = hostdev_addresses(a, "vm-a")
    assert home not in (source, landed) and mdev_type(home) == "mtty-2"
    # hostb's libvirt ran `release end migrated`: the mdev its hook prepared is gone, and its claim
    until("hostb releases the mdev it prepared", lambda: landed not in mdevs() and not b.claims())
    assert not b.records() and [json.loads(p.read_text())["owner"] for p in a.claims()] == [claim["owner"]]
    FIGURES["compatible"] = {
        "virsh_migrate_s": round(there_s, 2),
        "vfio_bytes_query_migrate": vfio_bytes,
        "query_migrate_errors": sorted(set(QUERY_ERRORS)),
        "devmig_libvirt_migrate_s": back_s,
        "devmig_libvirt_migrate_output": back.out,
    }


def test_an_incompatible_vm_is_refused_before_qemu_starts_and_fails_late_without_the_hook(
    hosts: tuple[LibvirtHost, LibvirtHost], scratch: list[str]
) -> None:
    a, b = hosts
    source, chosen = create("mtty-2"), create("mtty-1")  # hostb's mdev, as a management layer chose it
    start(a, "vm-b", "6c1d4b0f-8e32-4f90-8b7c-3d5e7f901b22", [source], scratch)
    while free("mtty-2") > 0:  # hostb has no room for another mtty-2
        create("mtty-2")
    # (e) preflight on the source, before anything starts
    caps = a.dir / "capabilities-b.json"
    caps.write_text(devmig("capabilities", "-j").out)
    checked = devmig("libvirt", "preflight", "vm-b", "-c", a.uri, "--to", "hostb", "--dest-capabilities", str(caps))
    assert checked.code == 1, checked.out + checked.err
    nr_ports = "param-value-not-allowed: parameter nr_ports=2 is not allowed at the destination (allowed: 1)"
    assert nr_ports in checked.out and "no-free-instance" in checked.out
    postcopy = devmig(
        "libvirt", "preflight", "vm-b", "-c", a.uri, "--to", "hostb", "--dest-capabilities", str(caps), "--postcopy"
    )
    assert postcopy.code == 1 and "postcopy-requested" in postcopy.out
    # the migration names hostb's mtty-1 mdev (`--xml`, as Nova passes it)
    xml = a.virsh("dumpxml", "--migratable", "vm-b").out.replace(f"uuid='{source}'", f"uuid='{chosen}'")
    assert f"uuid='{chosen}'" in xml
    dest_xml = a.dir / "vm-b.dest.xml"
    dest_xml.write_text(xml)
    before = (mdevs(), b.claims(), b.records(), b.journals())
    hooked, hooked_s = timed(lambda: migrate(a, "vm-b", b, 49154, "--xml", str(dest_xml)))
    assert hooked.returncode == 1
    assert "Hook script execution failed" in hooked.stderr and "migrate begin" in hooked.stderr
    assert "devmig: hostb cannot take domain vm-b (6c1d4b0f-8e32-4f90-8b7c-3d5e7f901b22)" in hooked.stderr
    assert f"the XML names mdev {chosen} (mtty/mtty-1) here, which cannot take it: {nr_ports}" in hooked.stderr
    assert not b.qemu_log("vm-b").exists()  # QEMU never started on hostb
    assert b.domains(inactive=True) == [] and a.domains() == ["vm-b"]
    assert (mdevs(), b.claims(), b.records(), b.journals()) == before
    # (c) the same migration without the hook: QEMU starts on hostb and mtty refuses the state
    removed = devmig("libvirt", "uninstall-hook", "--hooks-dir", str(b.hooks_dir))
    assert removed.code == 0, removed.err
    try:
        bare, bare_s = timed(lambda: migrate(a, "vm-b", b, 49155, "--xml", str(dest_xml)))
    finally:
        install_hook(b)
    assert bare.returncode == 1 and "load of migration failed" in bare.stderr, bare.stderr
    assert b.qemu_log("vm-b").exists() and a.domains() == ["vm-b"] and b.domains(inactive=True) == []
    FIGURES["incompatible"] = {
        "with_hook_s": hooked_s,
        "with_hook_error": hooked.stderr.strip(),
        "without_hook_s": bare_s,
        "without_hook_error": bare.stderr.strip(),
        "preflight": checked.out,
    }


def test_preflight_reads_both_mtty_devices_flags_and_finds_p2p(
    hosts: tuple[LibvirtHost, LibvirtHost], scratch: list[str]
) -> None:
    """Two VFIO devices need P2P on both; mtty has it, which preflight reads through VFIO on a defined domain."""
    a, _ = hosts
    pair = [create("mtty-1"), create("mtty-1")]
    scratch.append("vm-e")
    path = a.dir / "vm-e.xml"
    path.write_text(mtty_domain("vm-e", "7d2e5c1a-9f43-4a01-9c8d-4e6f80a12c33", pair))
    assert a.virsh("define", str(path)).code == 0
    caps = a.dir / "capabilities-e.json"
    caps.write_text(devmig("capabilities", "-j").out)
    checked = devmig(
        "libvirt", "preflight", "vm-e", "-c", a.uri, "--to", "hostb", "--dest-capabilities", str(caps), "-j"
    )
    report = json.loads(checked.out)
    codes = {item["code"] for item in report["items"]}
    # QEMU's blockers are unknown (not running), so without flags read through VFIO preflight would say
    # migration-flags-not-checked; mtty's flags are STOP_COPY|P2P|PRE_COPY, so no no-p2p either
    assert "qemu-blockers-not-checked" in codes, report["items"]
    assert "no-p2p" not in codes and "migration-flags-not-checked" not in codes, report["items"]
    FIGURES["two_devices_preflight"] = report["items"]


@pytest.mark.parametrize("how", ["kill-destination-qemu", "abort"])
def test_a_failure_after_the_hook_prepared_releases_what_it_prepared(
    hosts: tuple[LibvirtHost, LibvirtHost], scratch: list[str], how: str
) -> None:
    """Mid-migration: hostb's hook prepared, its QEMU runs and waits for the state. The source's QEMU is held
    (SIGSTOP) so the migration cannot finish first, then hostb's QEMU is killed or the job aborted on hosta."""
    a, b = hosts
    name = f"vm-d-{how.split('-')[0]}"
    source = create("mtty-2")
    start(a, name, "8e3f6d2b-a054-4b12-ad9e-5f7091b23d4" + ("4" if how == "abort" else "5"), [source], scratch)
    held = a.qemu_pid(name)
    assert held is not None
    before = mdevs()
    port = 49156 if how == "abort" else 49157
    running = subprocess.Popen(a.migrate_argv(name, b, port), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    aborting: subprocess.Popen[str] | None = None
    stopped = False
    try:
        until(
            "hostb's hook prepared and its QEMU started",
            lambda: started_claim(b) and b.qemu_pid(name) is not None,
            detail=lambda: f"{state_of(b)}; hook calls: {hook_calls(b)}",
        )
        os.kill(held, signal.SIGSTOP)
        stopped = True
        assert running.poll() is None, "the migration ended before it could be held"
        prepared = mdevs() - before
        assert len(prepared) == 1
        if how == "abort":  # libvirt cancels through the held QEMU's monitor: it answers once it runs again
            aborting = subprocess.Popen(["virsh", "-c", a.uri, "domjobabort", name], text=True)
            time.sleep(1)
        else:
            pid = b.qemu_pid(name)
            assert pid is not None
            os.kill(pid, signal.SIGKILL)
        os.kill(held, signal.SIGCONT)
        stopped = False
        _, err = running.communicate(timeout=180)
        if aborting is not None:
            assert aborting.wait(60) == 0
    finally:
        if stopped:
            os.kill(held, signal.SIGCONT)
        if running.poll() is None:
            running.kill()
    assert running.returncode == 1, err
    until(
        "hostb releases the mdev its hook prepared",
        lambda: mdevs() == before and not b.claims(),
        detail=lambda: state_of(b) + f"; hook calls: {hook_calls(b)}",
    )
    assert not b.records() and b.domains(inactive=True) == []
    assert a.virsh("domstate", name).out.strip() == "running"
    FIGURES[f"failure_{how}"] = {"error": err.strip(), "hook_calls_on_hostb": hook_calls(b)}


def started_claim(host: LibvirtHost) -> bool:
    """A claim of the host's marked started: libvirt ran `started begin` on the incoming domain's QEMU."""
    return any(json.loads(p.read_text()).get("started") for p in host.claims())
