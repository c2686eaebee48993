"""mtty: the kernel's sample mdev driver (samples/vfio-mdev/mtty.c), as the simulator's twin of the kernel tier.

Serial-port cards share a pool of ports (24 by default, mtty's MAX_MTTYS x 2): mtty-1 ("Single port serial")
takes one, mtty-2 ("Dual port serial") two. Like the real sample since Linux 6.7 it migrates (STOP_COPY, P2P,
PRE_COPY) and its stream header carries nr_ports, which resuming checks: an mtty-2 state does not resume into an
mtty-1 device. It declares no migration_info.json (devmig's mtty profile describes it), as the real one.
"""

from __future__ import annotations

from dataclasses import dataclass

from devmig.sim.drivers.common import make_device
from devmig.sim.kernel import SimMdev, SimType
from devmig.sim.vfio import SimVfioDevice

PORTS = {"mtty-1": 1, "mtty-2": 2}


@dataclass
class MttyDriver:
    total_ports: int = 24
    version: str = "0.1.0"
    name: str = "mtty"

    def types(self) -> dict[str, SimType]:
        return {
            "mtty-1": SimType(id="mtty-1", name="Single port serial"),
            "mtty-2": SimType(id="mtty-2", name="Dual port serial"),
        }

    def capacity(self, type_id: str, used: list[SimMdev]) -> int:
        free = self.total_ports - sum(PORTS[d.type_id] for d in used)
        return max(0, free // PORTS[type_id])

    def make_device(self, mdev: SimMdev) -> SimVfioDevice:
        ports = PORTS[mdev.type_id]
        return make_device(
            mdev.uuid,
            "kernel.org/samples/mtty",
            self.version,
            lambda: {"nr_ports": ports},
            memory_kib=4,
            group=mdev.group,
        )
