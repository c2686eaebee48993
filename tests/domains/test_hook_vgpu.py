"""The libvirt hook's PCI path with NVIDIA vGPUs on SR-IOV (the nvidia lab): an incoming VM's vGPU VF is prepared on
the destination by writing the vGPU type to a free VF (the XML then names that VF), refused with NVIDIA's rules'
reasons where they forbid it, and destroyed again when the VM leaves."""

from __future__ import annotations

from devmig.errors import ExitCode
from devmig.libvirt.domain import parse_domain
from devmig.libvirt.hook import Context, HookResult, run
from devmig.machine.lab import LabHost, lab_host
from devmig.provision import HostState
from devmig.sim.lab import load_lab
from devmig.testing.faults import host_state
from tests.domains.builders import annotated_xml, pci_hostdev

VF = "0000:41:00.1"  # src's VF running an H100-20C (type 1002)


def hosts(dest: str) -> tuple[LabHost, LabHost]:
    lab = load_lab("nvidia")
    return lab_host(lab, lab.host("src")), lab_host(lab, lab.host(dest))


def hook(host: LabHost, operation: str, sub: str, xml: str, extra: str = "-") -> HookResult:
    return run(["vm1", operation, sub, extra], xml, Context(host))


def vgpu_type(host: LabHost, vf: str) -> str:
    return host.sysfs.read(f"sys/bus/pci/devices/{vf}/nvidia/current_vgpu_type").strip()


def test_an_incoming_vgpu_vf_is_made_on_a_free_vf_and_destroyed_when_the_vm_leaves() -> None:
    src, newer = hosts("newer")
    xml = annotated_xml(src, pci_hostdev(VF, alias="ua-vgpu0"))
    began = hook(newer, "migrate", "begin", xml)
    assert began.code == ExitCode.OK, began.stderr
    (hostdev,) = parse_domain(began.stdout).hostdevs
    assert hostdev.kind == "pci" and vgpu_type(newer, hostdev.address) == "1002"
    assert hook(newer, "started", "begin", began.stdout) == HookResult(ExitCode.OK)
    assert hook(newer, "release", "end", began.stdout, extra="migrated").code == ExitCode.OK
    assert vgpu_type(newer, hostdev.address) == "0"
    assert HostState.of(newer.key).records() == []


def test_nvidias_rules_refuse_before_anything_is_made() -> None:
    src, ubuntu = hosts("ubuntu")
    before = host_state(ubuntu.sysfs)
    refused = hook(ubuntu, "migrate", "begin", annotated_xml(src, pci_hostdev(VF, alias="ua-vgpu0")))
    assert refused.code == ExitCode.REFUSED and refused.stdout == ""
    assert "nvidia-platform-differs" in refused.stderr and "nothing was prepared" in refused.stderr
    assert host_state(ubuntu.sysfs) == before
