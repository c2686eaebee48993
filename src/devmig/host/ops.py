"""The few writes devmig makes to a host's sysfs, each returning how to undo it.

Every operation checks what it can first (the parent and type exist, there is a free instance, the device is not
already bound), makes one change, verifies the kernel made it, and returns a `Change` whose `undo()` puts the host
back. The undo is data (`UndoStep`: an operation of the `UNDO` table and its arguments), so a journal can keep it on
disk before the change is made and carry it out in another process after a crash (devmig.provision). Every undo is
idempotent: it looks before it writes, so running it when the change was never made, or twice, is harmless.

Kernel errors keep their meaning: writing a UUID twice to `create` is EEXIST, no free instance is ENOSPC or EDQUOT
depending on the driver, a malformed UUID is EINVAL (drivers/vfio/mdev/mdev_sysfs.c).
"""

from __future__ import annotations

import contextlib
import errno
import inspect
import time
import uuid as uuidlib
from collections.abc import Callable
from dataclasses import dataclass

from devmig.errors import DevmigError, InputError
from devmig.host.mdev import MDEV_BUS_CLASS, MDEV_DEVICES
from devmig.host.pci import PCI_DEVICES
from devmig.host.sysfs import Sysfs, SysfsError, needs_root

#: How long to wait for the kernel to show a device or a binding after the write that makes it (sysfs updates are
#: synchronous for mdev and PCI binding; the wait covers drivers that probe asynchronously).
SETTLE_SECONDS = 2.0


class RefusedError(DevmigError):
    """The host refused a change (no capacity, a device in use, a driver that would not bind)."""


class NoCapacityError(RefusedError):
    """No free instance: the type is full, the driver has no room, or a concurrent prepare took the last one."""


@dataclass(frozen=True)
class UndoStep:
    """How to take one change back: an operation of `UNDO` and its arguments (strings, or None)."""

    op: str
    args: dict[str, str | None]

    def to_json(self) -> dict[str, object]:
        return {"op": self.op, "args": dict(self.args)}

    @classmethod
    def from_json(cls, data: object) -> UndoStep:
        if not isinstance(data, dict) or data.get("op") not in UNDO or not isinstance(data.get("args"), dict):
            raise InputError(f"undo step {data!r}: expected {{op: one of {', '.join(UNDO)}, args: {{...}}}}")
        args = data["args"]
        if not all(isinstance(k, str) and (v is None or isinstance(v, str)) for k, v in args.items()):
            raise InputError(f"undo step {data!r}: arguments must be strings or null")
        wanted = [name for name in inspect.signature(UNDO[data["op"]][0]).parameters if name != "root"]
        if sorted(args) != sorted(wanted):
            raise InputError(f"undo step {data!r}: {data['op']} takes the arguments {', '.join(wanted) or 'none'}")
        return cls(data["op"], dict(args))

    def describe(self) -> str:
        return UNDO[self.op][1].format(**{k: v if v is not None else "none" for k, v in self.args.items()})

    def run(self, root: Sysfs) -> None:
        UNDO[self.op][0](root, **self.args)


@dataclass(frozen=True)
class Change:
    """One change made to a host, and how to take it back."""

    what: str
    undo_step: UndoStep

    @property
    def undo_what(self) -> str:
        return self.undo_step.describe()

    def undo(self, root: Sysfs) -> None:
        self.undo_step.run(root)


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
    if free is not None and free.strip().isascii() and free.strip().isdigit() and int(free) == 0:
        raise NoCapacityError(f"mdev type {parent}/{type_id}: no free instance (available_instances is 0)")
    try:
        root.write(f"{type_dir}/create", device)
    except SysfsError as exc:
        if needs_root(exc.errno):  # the error says so: no guess at a cause
            raise RefusedError(f"creating mdev {device} of type {parent}/{type_id}: {exc}") from None
        reason = _CREATE_ERRORS.get(exc.errno or 0, "the kernel refused")
        error = NoCapacityError if exc.errno in (errno.ENOSPC, errno.EDQUOT) else RefusedError
        raise error(f"creating mdev {device} of type {parent}/{type_id}: {reason} ({exc})") from None
    if not _wait_for(lambda: root.exists(f"{MDEV_DEVICES}/{device}")):
        raise RefusedError(f"creating mdev {device}: the write was accepted but no device appeared")

    return device, Change(f"created mdev {device} of type {type_id} on {parent}", undo_create_mdev(device))


def undo_create_mdev(uuid: str) -> UndoStep:
    return UndoStep("remove_mdev", {"uuid": uuid})


def _undo_remove_mdev(root: Sysfs, uuid: str | None) -> None:
    if uuid is not None and root.exists(f"{MDEV_DEVICES}/{uuid}"):
        remove_mdev(root, uuid)


def _undo_recreate_mdev(root: Sysfs, uuid: str | None, parent: str | None, type_id: str | None) -> None:
    if uuid is not None and parent is not None and type_id is not None and not root.exists(f"{MDEV_DEVICES}/{uuid}"):
        create_mdev(root, parent, type_id, uuid)


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
        if needs_root(exc.errno):
            raise RefusedError(f"removing mdev {uuid}: {exc}") from None
        reason = "it is in use (open by a VM or a process)" if exc.errno == errno.EBUSY else "the kernel refused"
        raise RefusedError(f"removing mdev {uuid}: {reason} ({exc})") from None
    if not _wait_for(lambda: not root.exists(rel)):
        raise RefusedError(f"removing mdev {uuid}: the write was accepted but the device is still there")

    return Change(
        f"removed mdev {uuid} (type {type_id} on {parent})",
        UndoStep("recreate_mdev", {"uuid": uuid.lower(), "parent": parent, "type_id": type_id}),
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
    undo = undo_binding(root, address)
    before = undo.args["driver"]
    if before == driver:
        return Change(f"PCI function {address} was already bound to {driver}", UndoStep("nothing", {}))
    try:
        apply_binding(root, address, driver, driver)
    except SysfsError as exc:
        _try_restore(root, undo)
        raise RefusedError(f"binding PCI function {address} to {driver}: {exc}") from None
    if not _wait_for(lambda: _bound_driver(root, address) == driver):
        _try_restore(root, undo)
        raise RefusedError(f"binding PCI function {address} to {driver}: the driver did not take it (see dmesg)")
    return Change(f"bound PCI function {address} to {driver} (was {before or 'unbound'})", undo)


def undo_binding(root: Sysfs, address: str) -> UndoStep:
    """The step that puts `address` back on its present driver, with its present driver_override."""
    return UndoStep(
        "restore_binding",
        {"address": address, "driver": _bound_driver(root, address), "override": _override(root, address)},
    )


def _try_restore(root: Sysfs, undo: UndoStep) -> None:
    """Best effort after a failed bind: the caller's journal (when there is one) retries it."""
    with contextlib.suppress(SysfsError, RefusedError):
        undo.run(root)


def _undo_restore_binding(root: Sysfs, address: str | None, driver: str | None, override: str | None) -> None:
    if address is None or not root.exists(f"{PCI_DEVICES}/{address}"):
        return
    if _bound_driver(root, address) == driver and _override(root, address) == override:
        return
    try:
        apply_binding(root, address, driver, override)
    except SysfsError as exc:
        raise RefusedError(f"restoring PCI function {address} to {driver or 'no driver'}: {exc}") from None


def apply_binding(root: Sysfs, address: str, driver: str | None, override: str | None) -> None:
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
    undo = undo_binding(root, address)
    before, before_override = undo.args["driver"], undo.args["override"]
    try:
        if before is not None:
            root.write(f"sys/bus/pci/drivers/{before}/unbind", address)
        if before_override is not None:
            root.write(f"{PCI_DEVICES}/{address}/driver_override", "\n")
    except SysfsError as exc:
        raise RefusedError(f"unbinding PCI function {address}: {exc}") from None
    return Change(f"unbound PCI function {address} from {before or 'no driver'}", undo)


# -- NVIDIA vGPU on SR-IOV -------------------------------------------------------------------------------------------

#: errno of a current_vgpu_type write -> what the driver meant (NVIDIA's source: EPERM for a VF that already carries a
#: vGPU or for 0 with none, EINVAL for a non-numeric write; the errno of an unlisted type is [U])
_VGPU_ERRORS: dict[int, str] = {
    errno.EPERM: "the VF already carries a vGPU, or carries none to destroy",
    errno.EINVAL: "the driver refused the type ID",
    errno.EBUSY: "the vGPU is in use (open by a VM)",
    errno.ENOSPC: "the board has no room for this type",
}


def _vgpu_file(root: Sysfs, address: str) -> str:
    rel = f"{PCI_DEVICES}/{address}/nvidia/current_vgpu_type"
    if not root.exists(rel):
        raise InputError(
            f"PCI function {address}: has no nvidia/current_vgpu_type (expected a VF in NVIDIA's SR-IOV mode)"
        )
    return rel


def _current_vgpu(root: Sysfs, rel: str) -> int:
    text = root.read(rel).strip()
    if not text.isascii() or not text.isdigit():
        raise SysfsError(f"{rel}: expected a decimal type ID, found {text[:40]!r}")
    return int(text)


def _write_vgpu(root: Sysfs, rel: str, address: str, value: int) -> None:
    try:
        root.write(rel, str(value))
    except SysfsError as exc:
        if needs_root(exc.errno):
            raise RefusedError(f"PCI function {address}: writing {value} to {rel}: {exc}") from None
        reason = _VGPU_ERRORS.get(exc.errno or 0, "the driver refused")
        error = NoCapacityError if exc.errno == errno.ENOSPC else RefusedError
        raise error(f"PCI function {address}: writing {value} to nvidia/current_vgpu_type: {reason} ({exc})") from None


def create_vgpu(root: Sysfs, address: str, type_number: int) -> Change:
    """Make the VF carry a vGPU of `type_number`, as vgpu-device-manager does: the VF's creatable list is read again
    first (it shrinks as the board fills), then the bare ID is written; the Change destroys it (writes 0)."""
    from devmig.host.nvidia import parse_creatable

    rel = _vgpu_file(root, address)
    current = _current_vgpu(root, rel)
    if current:
        raise NoCapacityError(f"PCI function {address}: already carries vGPU type {current}")
    creatable = root.read_optional(f"{PCI_DEVICES}/{address}/nvidia/creatable_vgpu_types") or ""
    try:
        listed = parse_creatable(creatable)
    except ValueError as exc:
        raise SysfsError(f"PCI function {address}: nvidia/creatable_vgpu_types: {exc}") from None
    if type_number not in listed:
        raise NoCapacityError(
            f"PCI function {address}: vGPU type {type_number} is not creatable now (creatable: "
            f"{', '.join(map(str, listed)) or 'none, the board is full'})"
        )
    _write_vgpu(root, rel, address, type_number)
    if _current_vgpu(root, rel) != type_number:
        raise RefusedError(f"PCI function {address}: the write of type {type_number} was accepted but did not hold")
    return Change(f"created vGPU type {type_number} on VF {address}", undo_create_vgpu(address, type_number))


def undo_create_vgpu(address: str, type_number: int) -> UndoStep:
    return UndoStep("destroy_vgpu", {"address": address, "type_id": str(type_number)})


def _undo_destroy_vgpu(root: Sysfs, address: str | None, type_id: str | None) -> None:
    rel = f"{PCI_DEVICES}/{address}/nvidia/current_vgpu_type"
    if address is None or type_id is None or not root.exists(rel):
        return
    if str(_current_vgpu(root, rel)) == type_id:  # only the vGPU devmig made; another one is not ours
        _write_vgpu(root, rel, address, 0)


# -- attributes and files -------------------------------------------------------------------------------------------


def undo_attribute(root: Sysfs, rel: str) -> UndoStep:
    """The step that writes an attribute's present value back (a migration parameter of a claimed function)."""
    return UndoStep("write_attribute", {"path": rel, "text": root.read(rel)})


def _undo_write_attribute(root: Sysfs, path: str | None, text: str | None) -> None:
    if path is None or text is None or not root.exists(path):
        return  # the device went away, and its attribute with it
    if root.read(path) != text:
        root.write(path, text)


def undo_file(root: Sysfs, rel: str) -> UndoStep:
    """The step that puts a plain file back as it is now (absent stays absent)."""
    return UndoStep("restore_file", {"path": rel, "text": root.read_optional(rel)})


def _undo_restore_file(root: Sysfs, path: str | None, text: str | None) -> None:
    if path is None:
        return
    if text is None:
        root.remove_file(path)
    elif root.read_optional(path) != text:
        root.write_file(path, text)


#: operation -> (what carries it out, how to say it). Each looks before it writes (idempotent).
UNDO: dict[str, tuple[Callable[..., None], str]] = {
    "nothing": (lambda root: None, "nothing"),
    "remove_mdev": (_undo_remove_mdev, "remove mdev {uuid}"),
    "recreate_mdev": (_undo_recreate_mdev, "recreate mdev {uuid} of type {type_id} on {parent}"),
    "restore_binding": (_undo_restore_binding, "put PCI function {address} back on driver {driver}"),
    "write_attribute": (_undo_write_attribute, "write {text!r} back to {path}"),
    "restore_file": (_undo_restore_file, "put {path} back as it was"),
    "destroy_vgpu": (_undo_destroy_vgpu, "destroy vGPU type {type_id} on VF {address} (write 0)"),
}
