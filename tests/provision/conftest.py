"""Hosts for the provisioning tests: the default lab's, and small labs built for one case."""

from __future__ import annotations

from typing import Any

from devmig.host.access import Host
from devmig.host.describe import Describer
from devmig.host.inventory import Inventory
from devmig.host.profile import load_profiles
from devmig.machine import open_host
from devmig.machine.lab import LabHost
from devmig.model.descriptor import DeviceDescriptor
from devmig.sim.lab import Lab, LabSpec

RUNNING_GPU = "6f1c0a2e-3b4d-4c5e-8f90-a1b2c3d4e5f6"
RUNNING_VF = "0000:3b:00.2"
GPU = "0000:00:02.0"


def descriptor(host: Host, device: str) -> DeviceDescriptor:
    inv = Inventory.scan(host.sysfs)
    return Describer(inv, load_profiles("/nonexistent")).descriptor(inv.device(device))


def gpu_source() -> DeviceDescriptor:
    """alpha's running vGPU: simgpu-2G 1.2.0, aggregator 2, pv_mode ppgtt."""
    return descriptor(open_host("sim:alpha"), RUNNING_GPU)


def vf_source() -> DeviceDescriptor:
    return descriptor(open_host("sim:alpha"), RUNNING_VF)


def lab_host(hosts: list[dict[str, Any]], name: str) -> LabHost:
    """A host of a lab made here (not persisted: it lives in the test)."""
    lab = Lab(LabSpec.model_validate({"name": "t", "hosts": hosts}), "test")
    sim = lab.host(name)
    return LabHost(name=f"sim:t/{name}", sim=sim)
