"""The hook when the incoming XML already names a destination device: a management layer (Nova's `--xml`, mdevctl
defining the same UUID on both hosts) made an mdev here for the VM. devmig finds the device's descriptor by its
alias (the address was rewritten on the way), judges the named mdev itself, and uses it as it is, or refuses with
its reasons; it never swaps in another device behind the management layer's back."""

from __future__ import annotations

from devmig.errors import ExitCode
from devmig.host.inventory import Inventory
from devmig.host.ops import create_mdev
from devmig.libvirt.domain import parse_domain
from devmig.libvirt.metadata import from_domain
from devmig.machine.lab import LabHost
from devmig.provision import HostState
from devmig.provision.claims import load
from devmig.testing.faults import host_state
from tests.domains.builders import GPU_UUID, mdev_hostdev
from tests.domains.test_hook import DOMAIN_UUID, fresh_beta, hook, incoming

PARENT = "0000:00:02.0"


def named(xml: str, uuid: str) -> str:
    """The XML with its mdev's address rewritten to `uuid`, as Nova's `--xml` does (the metadata keeps alpha's)."""
    return xml.replace(f"address uuid='{GPU_UUID}'", f"address uuid='{uuid}'")


def mdevs(host: LabHost) -> set[str]:
    return {m.uuid for m in Inventory.scan(host.sysfs, parts=("mdevs",)).mdevs}


def test_the_metadata_finds_a_hostdev_by_its_alias_when_its_address_was_rewritten() -> None:
    xml = parse_domain(named(incoming(mdev_hostdev(GPU_UUID)), "0b7d2c10-5e6f-4a1b-9c2d-000000000001"))
    meta = from_domain(xml)
    assert meta is not None and meta.aliases == {"ua-gpu0": GPU_UUID}
    (hostdev,) = xml.hostdevs
    found = meta.descriptor(hostdev)
    assert found is not None and found.type == "simgpu-2G" and found.address is not None
    assert found.address.id == GPU_UUID
    # without the alias, a rewritten address has no descriptor
    assert meta.descriptor(hostdev.__class__(hostdev.kind, hostdev.address, hostdev.index)) is None


def test_a_named_mdev_of_a_type_that_takes_the_device_is_used_as_it_is() -> None:
    beta = fresh_beta()
    mine, _ = create_mdev(beta.sysfs, PARENT, "simgpu-2G")
    before = mdevs(beta)
    result = hook(beta, "migrate", "begin", named(incoming(mdev_hostdev(GPU_UUID)), mine))
    assert result.code == ExitCode.OK, result.stderr
    (hostdev,) = parse_domain(result.stdout).hostdevs
    assert hostdev.address == mine  # the management layer's device, not a new one
    assert mdevs(beta) == before
    meta = from_domain(parse_domain(result.stdout))
    assert meta is not None and set(meta.descriptors) == {mine}  # now describes beta's own device
    state = HostState.of(beta.key)
    assert state.records() == []  # nothing devmig made, nothing devmig releases
    claim = load(state, DOMAIN_UUID)
    assert claim is None or claim.ids == []


def test_a_named_mdev_that_cannot_take_the_device_is_refused_with_its_reasons() -> None:
    beta = fresh_beta()
    wrong, _ = create_mdev(beta.sysfs, PARENT, "simgpu-4G")
    before = host_state(beta.sysfs)
    result = hook(beta, "migrate", "begin", named(incoming(mdev_hostdev(GPU_UUID)), wrong))
    assert result.code == ExitCode.REFUSED and result.stdout == ""
    assert f"the XML names mdev {wrong} ({PARENT}/simgpu-4G) here, which cannot take it: " in result.stderr
    assert "nothing was prepared" in result.stderr
    assert host_state(beta.sysfs) == before


def test_a_named_mdev_that_is_not_here_is_replaced_by_a_prepared_one() -> None:
    beta = fresh_beta()
    absent = "0b7d2c10-5e6f-4a1b-9c2d-000000000002"
    result = hook(beta, "migrate", "begin", named(incoming(mdev_hostdev(GPU_UUID)), absent))
    assert result.code == ExitCode.OK, result.stderr
    (hostdev,) = parse_domain(result.stdout).hostdevs
    assert hostdev.address not in (absent, GPU_UUID) and hostdev.address in mdevs(beta)
    claim = load(HostState.of(beta.key), DOMAIN_UUID)
    assert claim is not None and claim.complete and len(claim.ids) == 1
