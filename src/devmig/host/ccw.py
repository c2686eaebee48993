"""s390 channel subsystem: subchannels under /sys/bus/css/devices (Documentation/arch/s390/vfio-ccw.rst)."""

from __future__ import annotations

from devmig.host.devices import Subchannel
from devmig.host.scan import Scan, parse_override

CSS_DEVICES = "sys/bus/css/devices"


def _subchannel_type(text: str) -> str:
    value = text.strip().lower()
    if not value or any(c not in "0123456789abcdef" for c in value):
        raise ValueError(f"expected the subchannel type in hex, found {text[:40]!r}")
    return value


def scan_subchannels(scan: Scan) -> list[Subchannel]:
    found = []
    for busid, path in scan.listed("subchannel", CSS_DEVICES):
        obj = f"subchannel {busid}"
        sch = Subchannel(busid=busid, path=path)
        sch.subchannel_type = scan.attr(obj, f"{path}/type", _subchannel_type, required=True)
        sch.driver = scan.link(obj, f"{path}/driver")
        sch.driver_override = scan.attr(obj, f"{path}/driver_override", parse_override)
        sch.dev_busid = scan.attr(obj, f"{path}/dev_busid", str.strip)
        sch.chpids = scan.attr(obj, f"{path}/chpids", str.strip)
        found.append(sch)
    return found
