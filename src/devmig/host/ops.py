"""The few writes devmig makes to a host's sysfs, each returning how to undo it.

Every operation checks what it can first (the parent and type exist, there is a free instance, the device is not
already bound), makes one change, verifies the kernel made it, and returns a `Change` whose `undo()` puts the host
back. Provisioning (a journal of Changes, unwound on failure) builds on these.

Kernel errors keep their meaning: writing a UUID twice to `create` is EEXIST, no free instance is ENOSPC or EDQUOT
depending on the driver, a malformed UUID is EINVAL (drivers/vfio/mdev/mdev_sysfs.c).
"""

from __future__ import annotations

import errno
import time
import uuid as uuidlib
from collections.abc import Callable
from dataclasses import dataclass

from devmig.errors import DevmigError, InputError
from devmig.host.mdev import MDEV_BUS_CLASS, MDEV_DEVICES
from devmig.host.pci import PCI_DEVICES
from devmig.host.sysfs import Sysfs, SysfsError

#: How long to wait for the kernel to show a device or a binding after the write that makes it (sysfs updates are
#: synchronous for mdev and PCI binding; the wait covers drivers that probe asynchronously).
SETTLE_SECONDS = 2.0


class RefusedError(DevmigError):
    """The host refused a change (no capacity, a device in use, a driver that would not bind)."""


@dataclass(frozen=True)
class Change:
    """One change made to a host, and how to take it back."""

    what: str
    undo_what: str
    undo: Callable[[], None]


def _wait_for(predicate: Callable[[], bool]) -> bool:
    deadline = time.monotonic() + SETTLE_SECONDS
    while True:
        if predicate():
            return True
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)


# -- mdev -----------------------------------------------------------------------------------------------------------

_CREATE_ERRORS: dict[int, str] = {
    errno.EEXIST: "a device with this UUID already exists",
    errno.ENOSPC: "no free instance of this type (the parent is full)",
    errno.EDQUOT: "no free instance of this type (the parent is full)",
    errno.EINVAL: "the driver refused the UUID or the type",
    errno.EBUSY: "the parent is busy",
}


def _type_dir(root: Sysfs, parent: str, type_id: str) -> str:
    parent_path = root.readlink(f"{MDEV_BUS_CLASS}/{parent}") if root.islink(f"{MDEV_BUS_CLASS}/{parent}") else None
    if parent_path is None or not root.isdir(parent_path):
        raise InputError(f"mdev parent {parent}: not found (expected a name listed by `devmig types`)")
    type_dir = f"{parent_path}/mdev_supported_types/{type_id}"
    if not root.isdir(type_dir):
        raise InputError(f"mdev parent {parent} does not support type {type_id}")
    return type_dir


def create_mdev(root: Sysfs, parent: str, type_id: str, uuid: str | None = None) -> tuple[str, Change]:
    """Create an mdev of `type_id` on `parent` (a new UUID unless given); returns its UUID and the Change."""
    try:
        device = str(uuidlib.UUID(uuid)) if uuid is not None else str(uuidlib.uuid4())
    except ValueError:
        raise InputError(f"mdev UUID {uuid!r}: expected a UUID such as 83b8f4f2-509f-382f-3c1e-e6bfe0fa1001") from None
    type_dir = _type_dir(root, parent, type_id)
    if root.exists(f"{MDEV_DEVICES}/{device}"):
        raise RefusedError(f"mdev {device}: already exists")
    free = root.read_optional(f"{type_dir}/available_instances")
    if free is not None and free.strip().isdigit() and int(free) == 0:
        raise RefusedError(f"mdev type {parent}/{type_id}: no free instance (available_instances is 0)")
    try:
        root.write(f"{type_dir}/create", device)
    except SysfsError as exc:
        reason = _CREATE_ERRORS.get(exc.errno or 0, "the kernel refused")
        raise RefusedError(f"creating mdev {device} of type {parent}/{type_id}: {reason} ({exc})") from None
    if not _wait_for(lambda: root.exists(f"{MDEV_DEVICES}/{device}")):
        raise RefusedError(f"creating mdev {device}: the write was accepted but no device appeared")

    def remove() -> None:
        remove_mdev(root, device)

    return device, Change(
        what=f"created mdev {device} of type {type_id} on {parent}", undo_what=f"remove mdev {device}", undo=remove
    )


def remove_mdev(root: Sysfs, uuid: str) -> Change:
    """Remove an mdev; the Change recreates it with the same UUID, parent and type."""
    rel = f"{MDEV_DEVICES}/{uuid.lower()}"
    if not root.exists(rel):
        raise InputError(f"mdev {uuid}: not found")
    path = root.readlink(rel)
    parent = path.rsplit("/", 2)[-2]
    type_id = root.link_name(f"{path}/mdev_type") or ""
    try:
        root.write(f"{path}/remove", "1")
    except SysfsError as exc:
        reason = "it is in use (open by a VM or a process)" if exc.errno == errno.EBUSY else "the kernel refused"
        raise RefusedError(f"removing mdev {uuid}: {reason} ({exc})") from None
    if not _wait_for(lambda: not root.exists(rel)):
        raise RefusedError(f"removing mdev {uuid}: the write was accepted but the device is still there")

    def recreate() -> None:
        create_mdev(root, parent, type_id, uuid)

    return Change(
        what=f"removed mdev {uuid} (type {type_id} on {parent})", undo_what=f"recreate mdev {uuid}", undo=recreate
    )


# -- PCI driver binding ---------------------------------------------------------------------------------------------


def _bound_driver(root: Sysfs, address: str) -> str | None:
    return root.link_name(f"{PCI_DEVICES}/{address}/driver")


def _override(root: Sysfs, address: str) -> str | None:
    text = root.read_optional(f"{PCI_DEVICES}/{address}/driver_override")
    return None if text in (None, "", "(null)") else text


def bind_pci(root: Sysfs, address: str, driver: str) -> Change:
    """Bind a PCI function to `driver` (vfio-pci or a variant driver) through driver_override, as libvirt and
    driverctl do; the Change restores the previous driver and override."""
    if not root.exists(f"{PCI_DEVICES}/{address}"):
        raise InputError(f"PCI function {address}: not found (expected an address such as 0000:3b:00.2)")
    if not root.isdir(f"sys/bus/pci/drivers/{driver}"):
        raise RefusedError(f"driver {driver}: not loaded (no sys/bus/pci/drivers/{driver}; try modprobe {driver})")
    before, before_override = _bound_driver(root, address), _override(root, address)
    if before == driver:
        return Change(f"PCI function {address} was already bound to {driver}", "nothing", lambda: None)
    try:
        _apply_binding(root, address, driver, driver)
    except SysfsError as exc:
        _apply_binding(root, address, before, before_override)
        raise RefusedError(f"binding PCI function {address} to {driver}: {exc}") from None
    if not _wait_for(lambda: _bound_driver(root, address) == driver):
        _apply_binding(root, address, before, before_override)
        raise RefusedError(f"binding PCI function {address} to {driver}: the driver did not take it (see dmesg)")
    return Change(
        what=f"bound PCI function {address} to {driver} (was {before or 'unbound'})",
        undo_what=f"rebind PCI function {address} to {before or 'no driver'}",
        undo=lambda: _apply_binding(root, address, before, before_override),
    )


def _apply_binding(root: Sysfs, address: str, driver: str | None, override: str | None) -> None:
    """Unbind from any other driver, set driver_override, and let the PCI core probe for `driver` again."""
    current = _bound_driver(root, address)
    if current is not None and current != driver:
        root.write(f"sys/bus/pci/drivers/{current}/unbind", address)
    # An empty write (a lone newline) clears driver_override (drivers/base/driver.c driver_set_override).
    root.write(f"{PCI_DEVICES}/{address}/driver_override", override if override is not None else "\n")
    if driver is not None and _bound_driver(root, address) != driver:
        root.write("sys/bus/pci/drivers_probe", address)


def unbind_pci(root: Sysfs, address: str) -> Change:
    """Unbind a PCI function from its driver and clear driver_override; the Change binds it back."""
    if not root.exists(f"{PCI_DEVICES}/{address}"):
        raise InputError(f"PCI function {address}: not found (expected an address such as 0000:3b:00.2)")
    before, before_override = _bound_driver(root, address), _override(root, address)
    try:
        if before is not None:
            root.write(f"sys/bus/pci/drivers/{before}/unbind", address)
        if before_override is not None:
            root.write(f"{PCI_DEVICES}/{address}/driver_override", "\n")
    except SysfsError as exc:
        raise RefusedError(f"unbinding PCI function {address}: {exc}") from None
    return Change(
        what=f"unbound PCI function {address} from {before or 'no driver'}",
        undo_what=f"rebind PCI function {address} to {before or 'no driver'}",
        undo=lambda: _apply_binding(root, address, before, before_override),
    )
