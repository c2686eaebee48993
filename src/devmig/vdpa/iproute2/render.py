"""What iproute2's `vdpa` prints for the family's answers, byte for byte, from the plain data of
devmig.vdpa.records.

Pure: data classes in, text out through `Output` (devmig.vdpa.iproute2.output). The renderers call it in the order
iproute2's `vdpa/vdpa.c` prints each attribute, so the text layout follows too: the trailing space after "NAME:",
the "link " keys with a trailing space, the blank-free `dev_features` line of a mgmtdev without features, "bit_N" in
text but the bare N in JSON.

Checked against /usr/sbin/vdpa (iproute2 6.1.0) on vdpa_sim in the kernel tier (tests/kernel/guest/test_vdpa_cli.py).
"""

from __future__ import annotations

from collections.abc import Callable

from devmig.vdpa.iproute2.output import Output, Scalar, text_scalar
from devmig.vdpa.records import DevConfig, MgmtDev, NetConfig, VdpaDev, VqStats
from devmig.vdpa.virtio import VirtioId, feature_names, feature_names_json

# --- the family's answers -------------------------------------------------------------------------------------


def features(out: Output, key: str, bits: int, device_id: int) -> None:
    """print_features: named bits, "bit_N" for an unnamed one in text and the bare N in JSON."""
    out.array(key, list(zip(feature_names(bits, device_id), feature_names_json(bits, device_id), strict=True)))


def mgmtdev(out: Output, dev: MgmtDev) -> None:
    """One management device of `vdpa mgmtdev show`."""
    out.handle_start(dev.handle)
    out.array("supported_classes", [(name, name) for name in dev.supported_classes])
    if dev.max_supported_vqs is not None:
        out.nl()
        out.field("max_supported_vqs", f"  max_supported_vqs {dev.max_supported_vqs}", dev.max_supported_vqs)
    if dev.dev_features is not None:
        features(out, "dev_features", dev.dev_features, dev.feature_device_id)
    out.handle_end()


#: `vdpa dev show`'s fields: JSON key, text format, value
DEV_FIELDS: tuple[tuple[str, str, Callable[[VdpaDev], Scalar]], ...] = (
    ("type", "type {}", lambda d: d.type),
    ("mgmtdev", " mgmtdev {}", lambda d: d.mgmtdev),
    ("vendor_id", " vendor_id {}", lambda d: d.vendor_id),
    ("max_vqs", " max_vqs {}", lambda d: d.max_vqs),
    ("max_vq_size", " max_vq_size {}", lambda d: d.max_vq_size),
)


def dev(out: Output, device: VdpaDev) -> None:
    """One device of `vdpa dev show` (min_vq_size is not shown, as in iproute2)."""
    out.handle_start(device.name)
    for key, fmt, value in DEV_FIELDS:
        v = value(device)
        out.field(key, fmt.format(text_scalar(v)), v)
    out.handle_end()


def _link(net: NetConfig) -> str | None:
    return None if net.link_up is None else ("up" if net.link_up else "down")


#: `vdpa dev config show`'s net fields in iproute2's order: JSON key (with iproute2's trailing spaces), text format,
#: value (None: the kernel did not send the attribute, nothing is printed)
NET_CONFIG_FIELDS: tuple[tuple[str, str, Callable[[NetConfig], Scalar | None]], ...] = (
    ("mac", "mac {} ", lambda n: n.mac),
    ("link ", "link {} ", _link),
    ("link_announce ", "link_announce {} ", lambda n: n.link_announce),
    ("max_vq_pairs", "max_vq_pairs {} ", lambda n: n.max_vqp),
    ("mtu", "mtu {} ", lambda n: n.mtu),
)


def config(out: Output, cfg: DevConfig) -> None:
    """One device of `vdpa dev config show`: only a net device's config is decoded (device_features and a block
    device's config are not printed: iproute2 prints "NAME: " alone for those)."""
    out.handle_start(cfg.name)
    if cfg.device_id == VirtioId.NET:
        for key, fmt, value in NET_CONFIG_FIELDS:
            v = value(cfg.net) if cfg.net is not None else None
            if v is not None:
                out.field(key, fmt.format(text_scalar(v)), v)
        if cfg.negotiated_features is not None:
            features(out, "negotiated_features", cfg.negotiated_features, cfg.device_id)
    out.handle_end()


def vstats(out: Output, stats: VqStats) -> None:
    """`vdpa dev vstats show`: the queue's type, then each vendor statistic as the kernel named it."""
    out.handle_start(stats.name)
    if stats.device_id == VirtioId.NET:
        out.field("queue_type", f"queue_type {stats.queue_type} ", stats.queue_type)
        for name, value in stats.stats.items():
            out.field(name, f"{name} {value} ", value)
    out.handle_end()


__all__ = [
    "DEV_FIELDS",
    "NET_CONFIG_FIELDS",
    "config",
    "dev",
    "features",
    "mgmtdev",
    "vstats",
]
