"""s390 devices: a vfio-ccw I/O subchannel and the vfio-ap matrix device. Neither driver implements VFIO
migration in Linux 6.12, and the simulator keeps that true: their devices answer ENOTTY."""

from __future__ import annotations

from dataclasses import dataclass

from devmig.sim.drivers.common import make_device
from devmig.sim.kernel import SimMdev, SimType
from devmig.sim.vfio import SimVfioDevice


@dataclass
class FixedTypeDriver:
    """An mdev parent offering one type with a fixed number of instances."""

    name: str
    type_id: str
    type_name: str
    device_api: str
    instances: int = 1
    description: str | None = None

    def types(self) -> dict[str, SimType]:
        return {
            self.type_id: SimType(
                id=self.type_id, name=self.type_name, device_api=self.device_api, description=self.description
            )
        }

    def capacity(self, type_id: str, used: list[SimMdev]) -> int:
        return max(0, self.instances - len(used))

    def make_device(self, mdev: SimMdev) -> SimVfioDevice:
        return make_device(
            mdev.uuid, "", "", dict, memory_kib=0, migration=False, device_api=self.device_api, group=mdev.group
        )


def vfio_ccw() -> FixedTypeDriver:
    return FixedTypeDriver("vfio_ccw_mdev", "vfio_ccw-io", "I/O subchannel (Non-QDIO)", "vfio-ccw")


def vfio_ap() -> FixedTypeDriver:
    return FixedTypeDriver("vfio_ap_mdev", "vfio_ap-passthrough", "VFIO AP Passthrough Device", "vfio-ap", 4)
