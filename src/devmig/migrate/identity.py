"""Who the two sides of a migration are: the source's descriptor for HELLO, and the destination's judge.

The destination is described once, before it listens or reads a file, so a device devmig cannot describe is
reported at once rather than after a sender connected. The judge runs devmig's check on the sender's descriptor
against the destination device's type and its current parameters (devmig.compat.check_device).
"""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError

from devmig.compat.check import check_device
from devmig.errors import DevmigError
from devmig.host.describe import Describer
from devmig.host.devices import MdevDevice, PciFunction
from devmig.host.inventory import Inventory
from devmig.host.profile import load_profiles
from devmig.host.sysfs import Sysfs
from devmig.migrate.session import Judge, Refusal
from devmig.model.descriptor import DeviceDescriptor, TypeCapability


def _describer(sysfs: Sysfs, profiles_dir: str | None) -> tuple[Inventory, Describer]:
    inventory = Inventory.scan(sysfs)
    return inventory, Describer(inventory, load_profiles(profiles_dir))


def source_hello(sysfs: Sysfs, name: str, profiles_dir: str | None = None) -> dict[str, Any]:
    """The descriptor part of HELLO: {"descriptor": ...} or, when the device cannot be described, the reason."""
    try:
        inventory, describer = _describer(sysfs, profiles_dir)
        descriptor = describer.descriptor(inventory.device(name))
    except DevmigError as exc:
        return {"descriptor": None, "descriptor_error": str(exc)}
    return {"descriptor": descriptor.model_dump(mode="json", exclude_none=True)}


def describe_destination(
    sysfs: Sysfs, name: str, profiles_dir: str | None = None
) -> tuple[DeviceDescriptor, TypeCapability]:
    """The destination device as it is now, and the capability of its type. DevmigError when it cannot be told."""
    inventory, describer = _describer(sysfs, profiles_dir)
    device = inventory.device(name)
    descriptor = describer.descriptor(device)  # a subchannel is refused here, with the reason
    if isinstance(device, MdevDevice):
        return descriptor, describer.type_capability(describer.mdev_type(device))
    assert isinstance(device, PciFunction)
    return descriptor, describer.function_capability(device)


def judge_for(descriptor: DeviceDescriptor, capability: TypeCapability) -> Judge:
    """Accept exactly the senders whose descriptor check_device finds compatible with this destination."""

    def judge(hello: dict[str, Any]) -> Refusal | None:
        raw = hello.get("descriptor")
        if raw is None:
            why = hello.get("descriptor_error") or "no descriptor was sent"
            return (
                f"the source could not describe its device ({why}), so devmig cannot check it; receive with "
                "--no-check to let the driver judge the state",
                None,
            )
        try:
            source = DeviceDescriptor.model_validate(raw)
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first["loc"]) or "(top)"
            return f"the source's descriptor is malformed at {where}: {first['msg']}", None
        verdict = check_device(source, capability, descriptor)
        if verdict.compatible:
            return None
        return "; ".join(f.message for f in verdict.errors), verdict.model_dump(mode="json")

    return judge
