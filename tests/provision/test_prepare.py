"""`prepare` and `release` on simulated hosts: the device made, the parameters written once and read back, the
next candidate tried when the host refuses one, and nothing left behind by a failure."""

from __future__ import annotations

import json

import pytest

from devmig.errors import InputError
from devmig.host.access import Host
from devmig.host.inventory import Inventory
from devmig.host.mdevctl import list_dumpjson
from devmig.host.ops import RefusedError, create_mdev
from devmig.machine import KernelHost, open_host
from devmig.machine.lab import LabHost
from devmig.provision import HostState, prepare, rank, release
from devmig.testing.faults import host_state
from tests.labs import MTTY_UUID, build_sim_lab
from tests.provision.conftest import GPU, RUNNING_GPU, descriptor, gpu_source, lab_host, vf_source

NEW = "11111111-2222-4333-8444-555555555555"


def test_prepare_writes_each_parameter_once_and_release_takes_it_all_back() -> None:
    beta = open_host("sim:beta")
    before = host_state(beta.sysfs)
    done = prepare(gpu_source(), beta, uuid=NEW, persist=True, source_id="src-uuid")
    assert (done.kind, done.device, done.parent, done.type) == ("mdev", NEW, GPU, "simgpu-2G")
    assert list(done.params.items()) == [("memory", 2048), ("aggregator", 2), ("pv_mode", "ppgtt")]
    assert done.mapping() == {"target_mdevs": {"src-uuid": NEW}}
    # the new device describes as the source: a migration back would be identical
    assert descriptor(beta, NEW).params == gpu_source().params
    # the definition mdevctl reads: parameters in write order, started at boot
    listed = json.loads(list_dumpjson(beta.sysfs, Inventory.scan(beta.sysfs).mdevs))
    assert listed == [
        {
            GPU: [
                {
                    NEW: {
                        "mdev_type": "simgpu-2G",
                        "start": "auto",
                        "attrs": [
                            {"migration/memory": "2048"},
                            {"migration/aggregator": "2"},
                            {"migration/pv_mode": "ppgtt"},
                        ],
                    }
                }
            ]
        }
    ]
    released = release(NEW, beta)
    assert released.undone[-1] == f"remove mdev {NEW}"
    assert host_state(beta.sysfs) == before
    assert HostState.of(beta.key).records() == []


def test_the_mapping_names_the_source_by_its_address_unless_told_otherwise() -> None:
    """Nova's target_mdevs is keyed by the source mdev's UUID: the descriptor's address gives it; --source-id
    still wins; a descriptor without an address (an older devmig's) gives an empty map, never a made-up key."""
    source = gpu_source()
    assert source.address is not None and source.address.id == RUNNING_GPU
    cases = [
        (source, None, RUNNING_GPU),
        (source, "given-id", "given-id"),
        (source.model_copy(update={"address": None}), None, None),
    ]
    for described, source_id, key in cases:
        beta = open_host("sim:beta")
        done = prepare(described, beta, source_id=source_id)
        assert done.mapping() == {"target_mdevs": {key: done.device} if key else {}}
        assert done.to_dict()["source_id"] == key
        release(done.id, beta)


def test_preparing_again_with_the_same_uuid_returns_the_same_device() -> None:
    beta = open_host("sim:beta")
    first = prepare(gpu_source(), beta, uuid=NEW)
    again = prepare(gpu_source(), beta, uuid=NEW)
    assert again.existing and again.device == first.device
    assert [m.uuid for m in Inventory.scan(beta.sysfs).mdevs] == [NEW]
    other = gpu_source().model_copy(update={"params": {"memory": 2048, "aggregator": 4}})
    with pytest.raises(RefusedError, match="for a different source device"):
        prepare(other, beta, uuid=NEW)


def test_a_uuid_devmig_did_not_make_is_not_taken_over() -> None:
    beta = open_host("sim:beta")
    create_mdev(beta.sysfs, GPU, "simgpu-2G", NEW)
    with pytest.raises(RefusedError, match="devmig did not prepare it"):
        prepare(gpu_source(), beta, uuid=NEW)
    with pytest.raises(InputError, match="expected a UUID"):
        prepare(gpu_source(), beta, uuid="not-a-uuid")


def test_release_refuses_a_device_a_vm_uses_and_unknown_devices() -> None:
    beta = open_host("sim:beta")
    done = prepare(gpu_source(), beta)
    assert isinstance(beta, LabHost)
    beta.sim.start(done.device)
    with pytest.raises(RefusedError, match="open by a VM"):
        release(done.device, beta)
    assert beta.sysfs.exists(f"sys/bus/mdev/devices/{done.device}")
    beta.sim.kernel.vfio_device(done.device).close()
    release(done.id, beta)
    with pytest.raises(InputError, match="no devmig prepare"):
        release(done.id, beta)


def test_a_vf_is_bound_through_driver_override_and_given_back() -> None:
    beta = open_host("sim:beta")
    before = host_state(beta.sysfs)
    first = prepare(vf_source(), beta)
    assert (first.device, first.bound) == ("0000:3b:00.2", None)
    second = prepare(vf_source(), beta)  # 3b:00.2 is claimed now: the next VF is bound for it
    assert (second.device, second.bound) == ("0000:3b:00.3", "simnic_vfio_pci")
    assert beta.sysfs.read("sys/bus/pci/devices/0000:3b:00.3/driver_override") == "simnic_vfio_pci"
    # the descriptor names its own VF (alpha's 3b:00.2): the map Nova gets names it
    assert second.mapping() == {"pci_dev_map_src_dst": {"0000:3b:00.2": "0000:3b:00.3"}}
    release("0000:3b:00.3", beta)
    release(first.id, beta)
    assert host_state(beta.sysfs) == before


def test_when_the_driver_refuses_a_parameter_the_next_candidate_is_tried() -> None:
    # The identical GPU ranks first but has room for one 2G instance only; the source aggregates two, so the
    # driver refuses aggregator=2 (ENOSPC) after the create: that device goes, and the newer GPU takes it.
    host = lab_host(
        [
            {
                "name": "h",
                "gpus": [
                    {"address": "0000:00:02.0", "release": "1.2.0", "memory_mb": 2048},
                    {"address": "0000:00:03.0", "release": "1.3.0"},
                ],
            }
        ],
        "h",
    )
    before = host_state(host.sysfs)
    done = prepare(gpu_source(), host)
    assert done.parent == "0000:00:03.0" and done.params["compression"] is False
    assert len(done.attempts) == 1 and "0000:00:02.0/simgpu-2G" in done.attempts[0]
    assert "refused aggregator=2" in done.attempts[0] and "No space left on device" in done.attempts[0]
    release(done.id, host)
    assert host_state(host.sysfs) == before


def test_nothing_fits_is_exit_1_with_every_reason() -> None:
    delta: Host = open_host("sim:delta")
    before = host_state(delta.sysfs)
    with pytest.raises(Exception, match="minor-older") as info:
        prepare(gpu_source(), delta)
    assert getattr(info.value, "exit_code", None) == 1
    assert host_state(delta.sysfs) == before


def test_a_profile_type_is_created_and_its_fixed_parameters_are_not_written() -> None:
    # The mtty twin, as the real mtty: no migration/ files; nr_ports is fixed by the type (a profile says so).
    fs = build_sim_lab()
    host = KernelHost(fs, name="sim-mtty")
    source = descriptor(host, MTTY_UUID)
    assert source.confidence == "profile" and source.params == {"nr_ports": 2}
    best = rank(source, host).require()
    assert (best.parent, best.type) == ("mtty", "mtty-2")
    assert sorted(c.type for c in rank(source, host).rejected) == ["i915-GVTg_V5_4", "mtty-1"]
    before = host_state(fs)
    done = prepare(source, host, uuid=NEW, persist=True)
    made = descriptor(host, NEW)
    assert done.params == {} and made.address is not None and made.address.id == NEW
    assert made.model_copy(update={"address": None}) == source.model_copy(update={"address": None})
    assert json.loads(fs.read(f"etc/mdevctl.d/mtty/{NEW}")) == {"mdev_type": "mtty-2", "start": "auto", "attrs": []}
    release(NEW, host)
    assert host_state(fs) == before
