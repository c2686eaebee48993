"""s390 crypto: the vfio_ap matrix device and the AP bus masks (Documentation/arch/s390/vfio-ap.rst)."""

from __future__ import annotations

from devmig.host.devices import ApMatrix
from devmig.host.scan import Scan

AP_MATRIX = "sys/devices/vfio_ap/matrix"
AP_BUS = "sys/bus/ap"


def scan_ap_matrix(scan: Scan) -> ApMatrix | None:
    if not scan.root.isdir(AP_MATRIX):
        return None
    matrix = ApMatrix(path=AP_MATRIX)
    matrix.apmask = scan.attr("AP bus", f"{AP_BUS}/apmask", str.strip)
    matrix.aqmask = scan.attr("AP bus", f"{AP_BUS}/aqmask", str.strip)
    return matrix
