"""The facts of a device's VFIO migration that decide whether a VM can move: one predicate per fact, shared by
`check` (devmig.compat.rules) and the libvirt preflight (which reads the flags through VFIO), so both say the same.
"""

from __future__ import annotations

from devmig.model.migration import FLAG_BITS, MigrationSupport

#: QEMU migrates several VFIO devices of one VM only when every one has P2P (RUNNING_P2P quiesces them all before
#: any stops: docs/devel/migration/vfio.rst); one device alone needs only STOP_COPY.
P2P_FROM_DEVICES = 2


def lacks_p2p(flags: int, devices: int) -> bool:
    """A driver with these VFIO_MIGRATION_* bits cannot migrate in a VM with `devices` VFIO devices for want of P2P."""
    return devices >= P2P_FROM_DEVICES and not flags & FLAG_BITS["p2p"]


def cannot_migrate(migration: MigrationSupport | None) -> bool:
    """The driver is known to implement no VFIO migration (no flags: ENOTTY)."""
    return migration is not None and migration.flags == []


def cannot_dirty_track(source: MigrationSupport | None, destination: MigrationSupport | None) -> bool:
    """The destination is known to track no DMA for a device that does DMA (its source does not say it needs none):
    QEMU on the destination then blocks the VM's live migration from there."""
    needed = source is None or source.dirty_tracking != "not-needed"
    return needed and destination is not None and destination.dirty_tracking == "none"
