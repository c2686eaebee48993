"""devmig's libvirt qemu hook, as libvirt calls it (four arguments, the domain's XML on stdin), on simulated hosts.

An incoming VM whose devices this host can take is prepared and its XML rewritten to name them; one it cannot take is
refused with every device's reason and nothing left behind, whichever host change fails; what the hook prepared is
released when the incoming domain never starts or leaves by migration, and by `recover` after a crash.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
from pathlib import Path

import pytest

from devmig.errors import ExitCode
from devmig.host.access import Host
from devmig.libvirt.domain import parse_domain
from devmig.libvirt.hook import Context, HookResult, Settings, rewrite_all, run
from devmig.libvirt.install import MARKER, install, uninstall
from devmig.libvirt.metadata import from_domain
from devmig.machine import open_host
from devmig.machine.lab import LabHost
from devmig.provision import HostState, recover
from devmig.provision.claims import Claim, load, save
from devmig.sim.lab import load_lab
from devmig.testing.faults import FaultySysfs, SysfsSwapped, eio, host_state
from tests.domains.builders import GPU_UUID, VF, annotated_xml, domain_xml, mdev_hostdev, pci_hostdev
from tests.paths import ROOT
from tests.provision.conftest import lab_host

DOMAIN_UUID = "1de7bf4e-3d7b-41a5-ae79-4743fa6bfc2d"
HOSTDEVS = (mdev_hostdev(GPU_UUID), pci_hostdev(VF, "simnic_vfio_pci"))


def incoming(*hostdevs: str, annotated: bool = True) -> str:
    """The XML a destination's hook gets: the domain as it ran on alpha, with alpha's descriptors in its metadata."""
    return annotated_xml(open_host("sim:alpha"), *hostdevs) if annotated else domain_xml(*hostdevs)


def fresh_beta() -> LabHost:
    """The default lab's beta, not persisted: a test may change it freely."""
    return LabHost(name="sim:default/beta", sim=load_lab("default").host("beta"))


def hook(host: Host, operation: str, sub: str, xml: str, extra: str = "-", **kwargs: object) -> HookResult:
    return run(["vm1", operation, sub, extra], xml, Context(host, **kwargs))  # type: ignore[arg-type]


def test_an_incoming_vm_gets_its_devices_prepared_and_its_xml_rewritten() -> None:
    beta = fresh_beta()
    result = hook(beta, "migrate", "begin", incoming(*HOSTDEVS))
    assert result.code == ExitCode.OK, result.stderr
    out = parse_domain(result.stdout)
    mdev, vf = out.hostdevs
    assert mdev.kind == "mdev" and mdev.address != GPU_UUID and mdev.alias == "ua-gpu0"
    assert beta.sysfs.link_name(f"sys/bus/mdev/devices/{mdev.address}/mdev_type") == "simgpu-2G"
    assert beta.sysfs.read(f"sys/bus/mdev/devices/{mdev.address}/migration/aggregator") == "2"
    assert vf.kind == "pci" and vf.model == "simnic_vfio_pci"
    # devmig's metadata now describes the destination's own devices, keyed by their addresses
    meta = from_domain(out)
    assert meta is not None and set(meta.descriptors) == {mdev.address, vf.address}
    assert "qemu:override" in result.stdout and "nova:instance" in result.stdout  # others' parts kept
    state = HostState.of(beta.key)
    claim = load(state, DOMAIN_UUID)
    assert claim is not None and claim.complete and not claim.started
    records = {r["device"]: r for r in state.records()}
    assert set(records) == {mdev.address, vf.address}
    assert records[mdev.address]["mapping"] == {"target_mdevs": {GPU_UUID: mdev.address}}


def test_a_host_that_cannot_take_a_device_refuses_with_every_reason_and_changes_nothing() -> None:
    """A host with NICs only: the vGPU has no device here; the VF would fit, but is not prepared alone."""
    nics = lab_host([{"name": "n", "nics": [{"address": "0000:3b:00.0", "vfs": 2, "bound": ["0000:3b:00.2"]}]}], "n")
    before = host_state(nics.sysfs)
    result = hook(nics, "migrate", "begin", incoming(*HOSTDEVS))
    assert result.code == ExitCode.REFUSED and result.stdout == ""
    lines = result.stderr.splitlines()
    assert (
        lines[0].startswith("devmig: sim:t/n (n) cannot take domain vm1 (1de7bf4e-")
        and "nothing was prepared" in lines[0]
    )
    assert any(
        f"hostdev #1 mdev {GPU_UUID} (vfio-pci simgpu-2G, version 1.2.0): no compatible device" in x for x in lines
    )
    assert host_state(nics.sysfs) == before
    state = HostState.of(nics.key)
    assert state.records() == [] and load(state, DOMAIN_UUID) is None


def test_a_device_without_metadata_follows_the_policy(tmp_path: Path) -> None:
    beta = fresh_beta()
    refused = hook(beta, "migrate", "begin", incoming(*HOSTDEVS, annotated=False))
    assert refused.code == ExitCode.REFUSED
    assert refused.stderr.count("no devmig descriptor in the domain's metadata") == 2
    assert 'unannotated = "refuse" in the default' in refused.stderr
    settings = tmp_path / "libvirt.toml"
    settings.write_text('unannotated = "pass"\n')
    passed = hook(beta, "migrate", "begin", incoming(*HOSTDEVS, annotated=False), settings=Settings.load(settings))
    assert passed == HookResult(ExitCode.OK)  # nothing for devmig: libvirt keeps the XML as it is
    settings.write_text('unannotated = "maybe"\n')
    with pytest.raises(Exception, match=r"unannotated = 'maybe'; expected one of refuse, pass"):
        Settings.load(settings)


@pytest.mark.parametrize("hostdevs", [HOSTDEVS[:1], HOSTDEVS], ids=["one mdev", "mdev and VF"])
def test_every_host_change_of_the_hooks_prepare_can_fail_and_nothing_is_left(hostdevs: tuple[str, ...]) -> None:
    xml = incoming(*hostdevs)
    point = 0
    while True:
        point += 1
        beta = fresh_beta()
        faulty = FaultySysfs(beta.sysfs, fail_at=point, fault=eio)
        before = host_state(beta.sysfs)
        result = hook(SysfsSwapped(beta, faulty), "migrate", "begin", xml)
        state = HostState.of(beta.key)
        if not faulty.hit:
            assert result.code == ExitCode.OK, result.stderr
            break
        if result.code == ExitCode.OK:
            # the driver refused one candidate and the next was taken: each device is still prepared once
            assert len(state.records()) == len(hostdevs)
            continue
        assert result.code == ExitCode.REFUSED and "prepare failed" in result.stderr, result.stderr
        assert host_state(beta.sysfs) == before, f"fault point {point} ({faulty.made}): the host changed"
        assert state.records() == [] and load(state, DOMAIN_UUID) is None
        assert list(state.journals.iterdir()) == []
    assert point > (4 if len(hostdevs) == 1 else 6)  # create + 3 parameters (+ the VF's 2)


def test_a_domain_that_never_starts_is_released_one_that_ran_is_kept_until_it_leaves(tmp_path: Path) -> None:
    beta = fresh_beta()
    before = host_state(beta.sysfs)
    xml = incoming(*HOSTDEVS)
    # the incoming migration failed after the hook: libvirt tears the domain down
    assert hook(beta, "migrate", "begin", xml).code == ExitCode.OK
    assert hook(beta, "release", "end", xml).code == ExitCode.OK
    assert host_state(beta.sysfs) == before and HostState.of(beta.key).records() == []
    # it came in and ran: a stop keeps its devices; leaving by migration releases them (on this host as a source)
    rewritten = hook(beta, "migrate", "begin", xml).stdout
    for operation, sub in (("prepare", "begin"), ("start", "begin"), ("started", "begin"), ("stopped", "end")):
        assert hook(beta, operation, sub, rewritten) == HookResult(ExitCode.OK)
    defined = tmp_path / "qemu"  # a persistent domain: libvirt keeps its definition here
    defined.mkdir()
    (defined / "vm1.xml").write_text("<domain/>")
    assert hook(beta, "release", "end", rewritten, definitions=defined).code == ExitCode.OK
    assert len(HostState.of(beta.key).records()) == 2
    assert hook(beta, "release", "end", rewritten, extra="migrated", definitions=defined).code == ExitCode.OK
    assert host_state(beta.sysfs) == before and HostState.of(beta.key).records() == []


@pytest.mark.parametrize(
    ("reason", "defined"), [("failed", True), ("migrated", True), ("crashed", False), ("destroyed", False)]
)
def test_an_incoming_migration_that_fails_after_qemu_started_releases_its_devices(
    tmp_path: Path, reason: str, defined: bool
) -> None:
    """libvirt runs `started begin` as soon as the destination's QEMU starts, before the state arrives (seen on
    libvirt 11.3 in the kernel lab): a cancel then ends in `release end failed`, a killed QEMU in `release end
    crashed` of a domain not defined here (only a completed migration defines it on the destination); both let
    go. So does the end of a transient domain."""
    beta = fresh_beta()
    before = host_state(beta.sysfs)
    definitions = tmp_path / "qemu"
    definitions.mkdir()
    rewritten = hook(beta, "migrate", "begin", incoming(*HOSTDEVS)).stdout
    for operation, sub in (("prepare", "begin"), ("start", "begin"), ("started", "begin"), ("stopped", "end")):
        assert hook(beta, operation, sub, rewritten) == HookResult(ExitCode.OK)
    (definitions / "vm1.xml").write_text("<domain/>")
    for kept in ("destroyed", "shutdown", "crashed"):  # a domain defined here that stopped keeps its devices
        assert hook(beta, "release", "end", rewritten, extra=kept, definitions=definitions).code == ExitCode.OK
        assert len(HostState.of(beta.key).records()) == 2
    if not defined:
        (definitions / "vm1.xml").unlink()
    assert hook(beta, "release", "end", rewritten, extra=reason, definitions=definitions).code == ExitCode.OK
    assert host_state(beta.sysfs) == before and HostState.of(beta.key).records() == []
    assert load(HostState.of(beta.key), DOMAIN_UUID) is None


def test_a_retried_incoming_migration_releases_the_first_attempts_devices() -> None:
    beta = fresh_beta()
    xml = incoming(*HOSTDEVS)
    first = parse_domain(hook(beta, "migrate", "begin", xml).stdout).hostdevs[0].address
    second = parse_domain(hook(beta, "migrate", "begin", xml).stdout).hostdevs[0].address
    assert first != second and not beta.sysfs.exists(f"sys/bus/mdev/devices/{first}")
    assert len(HostState.of(beta.key).records()) == 2


def test_a_crash_half_way_is_finished_by_recover() -> None:
    """The hook died after its first prepare: the claim is incomplete; `devmig recover` releases what it made."""
    beta = fresh_beta()
    before = host_state(beta.sysfs)
    assert hook(beta, "migrate", "begin", incoming(*HOSTDEVS)).code == ExitCode.OK
    state = HostState.of(beta.key)
    claim = load(state, DOMAIN_UUID)
    assert claim is not None
    save(state, Claim(claim.owner, claim.label, claim.ids, complete=False))
    results = recover(beta)
    assert [(r.id, r.outcome, r.steps) for r in results] == [(f"claim {DOMAIN_UUID}", "released", 2)]
    assert host_state(beta.sysfs) == before and state.records() == [] and load(state, DOMAIN_UUID) is None


@pytest.mark.parametrize(
    ("argv", "stdin", "expected"),
    [
        (["vm1", "migrate", "begin"], "", "expected 4"),
        (["vm1", "migrate", "begin", "-"], "not xml", "not well-formed"),
        (["vm1", "migrate", "begin", "-"], "<!DOCTYPE d [<!ENTITY x 'y'>]><domain/>", "DTD"),
        (["vm2", "migrate", "begin", "-"], domain_xml(), "the XML on stdin is domain vm1's"),
        (["vm1", "migrate", "begin", "-"], "<domain><name>vm1</name></domain>", "no <uuid>"),
    ],
)
def test_bad_arguments_or_xml_are_bad_input(argv: list[str], stdin: str, expected: str) -> None:
    result = run(argv, stdin, Context(fresh_beta()))
    assert result.code == ExitCode.BAD_INPUT and expected in result.stderr and result.stdout == ""
    assert result.stderr.startswith("devmig: ") and result.stderr.count("\n") == 1


def test_operations_it_has_nothing_to_do_for_read_nothing() -> None:
    for operation, sub in (("prepare", "begin"), ("start", "begin"), ("stopped", "end"), ("reconnect", "begin")):
        assert run(["vm1", operation, sub, "-"], "", Context(fresh_beta())) == HookResult(ExitCode.OK)


# -- as libvirt runs it: the drop-in script, its environment, stdin ----------------------------------------------------


def test_the_installed_drop_in_runs_as_libvirt_runs_it(tmp_path: Path) -> None:
    hooks = tmp_path / "hooks"
    state = os.environ["DEVMIG_STATE_DIR"]
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    options = ["--hooks-dir", str(hooks), "--host", "sim:beta", "--state-dir", state]
    subprocess.run(
        [sys.executable, "-m", "devmig", "libvirt", "install-hook", *options],
        check=True,
        env=env,
        capture_output=True,
    )
    script = hooks / "qemu.d" / "devmig"
    assert MARKER in script.read_text() and os.access(script, os.X_OK)
    # libvirt's environment for hooks: no PYTHONPATH, no HOME of the user, a minimal PATH
    libvirt_env = {"LC_ALL": "C", "PATH": "/sbin:/usr/sbin:/bin:/usr/bin", "HOME": "/"}

    def call(*args: str, xml: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(script), "vm1", *args], input=xml, env=libvirt_env, capture_output=True, text=True, timeout=60
        )

    # no claim on the host yet: started/release never start devmig (it would refuse this XML with exit 2)
    assert call("started", "begin", "-", xml="not xml").returncode == 0
    begin = call("migrate", "begin", "-", xml=incoming(*HOSTDEVS))
    assert begin.returncode == 0, begin.stderr
    assert parse_domain(begin.stdout).hostdevs[0].address != GPU_UUID
    assert call("started", "begin", "-", xml="not xml").returncode == 2  # a claim now: devmig runs, reads the XML
    assert call("release", "end", "-", xml=begin.stdout).returncode == 0
    # the operations devmig does nothing for never start it: the script reads the XML and exits
    ignored = call("prepare", "begin", "-", xml=begin.stdout)
    assert (ignored.returncode, ignored.stdout, ignored.stderr) == (0, "", "")
    refused = call("migrate", "begin", "-", xml=incoming(*HOSTDEVS, annotated=False))
    assert refused.returncode == 1 and "no devmig descriptor" in refused.stderr and refused.stdout == ""
    assert call("migrate", "begin", xml="").returncode == 2
    assert uninstall(hooks_dir=hooks) == script and not script.exists()
    assert uninstall(hooks_dir=hooks) is None


def test_install_refuses_to_replace_or_remove_a_file_that_is_not_devmigs(tmp_path: Path) -> None:
    other = tmp_path / "qemu.d" / "devmig"
    other.parent.mkdir()
    other.write_text("#!/bin/sh\nexit 0\n")
    with pytest.raises(Exception, match="exists and is not devmig's hook"):
        install(["true"], hooks_dir=tmp_path)
    with pytest.raises(Exception, match="not devmig's hook"):
        uninstall(hooks_dir=tmp_path)
    assert other.read_text() == "#!/bin/sh\nexit 0\n"
    with pytest.raises(Exception, match="expected a file name"):
        install(["true"], hooks_dir=tmp_path, name="../x")
    with contextlib.suppress(FileNotFoundError):
        assert install(["true"], hooks_dir=tmp_path, name="devmig2").path.read_text().startswith("#!/bin/sh\n")


def test_sources_that_swap_places_are_rewritten_all_at_once() -> None:
    """Two VFs whose addresses trade places between the hosts: a one-by-one rewrite would find the new address
    taken by the other hostdev."""
    a, b, c = "0000:3b:00.2", "0000:3b:00.3", "0000:3b:00.4"
    xml = parse_domain(domain_xml(pci_hostdev(a), pci_hostdev(b), mdev_hostdev(GPU_UUID)))
    new_mdev = "11111111-2222-4333-8444-555555555555"
    rewrite_all(xml, {a: b, b: c, GPU_UUID: new_mdev})
    assert [h.address for h in parse_domain(xml.text()).hostdevs] == [b, c, new_mdev]
    xml = parse_domain(domain_xml(pci_hostdev(a), pci_hostdev(b)))
    rewrite_all(xml, {a: b, b: a})
    assert [h.address for h in parse_domain(xml.text()).hostdevs] == [b, a]
