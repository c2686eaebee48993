"""vDPA devices in devmig's formats: a device's source descriptor and a management device's capabilities.

A vDPA device reaches the guest as a virtio device, so what must match across hosts is virtio's: the device class
(net, block), the features the guest negotiated, and the configuration the device was created with (mac, mtu,
max_vqp). devmig writes those as data in its usual formats, so `devmig check` needs nothing new:

- device_api `vdpa`, api `{"class": "net"}` (identity), model `oasis-open.org/virtio-net` (the virtio device type:
  one model across vendors), type `<mgmtdev>-<class>` (which management device makes it; another type of the same
  model is only a warning, as for mdev types), software_version `1.0.0` (the vdpa family's version 1: features, not
  a driver version, carry compatibility);
- a parameter per virtio feature, `feature_<name>` (bool, off_value false): the source lists the features it
  negotiated (or offers, before a driver negotiated); a destination allows true exactly for the features its
  management device can offer, so a feature it lacks is refused by name;
- `mac` (str), `mtu` (int, 68-65535), `max_vqp` (int, 1 to half the management device's queues when it has MQ):
  present on a destination when its management device offers the feature that carries them (MAC, MTU, MQ).

Pure: data classes from devmig.vdpa in, pydantic documents out.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from pydantic import ValidationError

from devmig.errors import DevmigError
from devmig.model.descriptor import DeviceDescriptor, ModelSpec, TypeCapability
from devmig.model.load import problem
from devmig.model.params import ParamSpec, ParamValue
from devmig.vdpa.records import DevConfig, MgmtDev, VdpaDev
from devmig.vdpa.virtio import (
    CLASS_NAMES,
    F_NET_MAC,
    F_NET_MQ,
    F_NET_MTU,
    NET_FEATURE_NAMES,
    TRANSPORT_FEATURE_NAMES,
    VirtioId,
    class_id,
    feature_names,
)

DEVICE_API = "vdpa"
#: the vdpa generic-netlink family's version (VDPA_GENL_VERSION), as a software version
VERSION = "1.0.0"
MODELS: dict[int, str] = {VirtioId.NET: "oasis-open.org/virtio-net", VirtioId.BLOCK: "oasis-open.org/virtio-blk"}
MAC_OFF = "00:00:00:00:00:00"
MTU_RANGE = "68-65535"
DEFAULT_MTU = 1500


def feature_param(name: str) -> str:
    return f"feature_{name.lower()}"


def type_name(mgmtdev: str, device_id: int) -> str:
    """`<mgmtdev>-<class>`, the handle's "/" spelled ":" (a type name holds no slash): vdpasim_net-net."""
    return f"{mgmtdev.replace('/', ':')}-{CLASS_NAMES.get(device_id, str(device_id))}"


def _known_bits(device_id: int) -> list[int]:
    """Every feature bit iproute2 names for the class: the transport ones, and net's own for net."""
    table = dict(TRANSPORT_FEATURE_NAMES)
    if device_id == VirtioId.NET:
        table.update(NET_FEATURE_NAMES)
    return sorted(table)


def _feature_params(offered: int, device_id: int) -> dict[str, ParamSpec]:
    bits = sorted(set(_known_bits(device_id)) | {b for b in range(64) if offered >> b & 1})
    params = {}
    for bit in bits:
        (name,) = feature_names(1 << bit, device_id)
        can = bool(offered >> bit & 1)
        params[feature_param(name)] = ParamSpec(
            type="bool",
            init_value=can,
            off_value=False,
            allowed_values=[True, False] if can else [False],
            description=f"virtio feature {name} (bit {bit})"
            + ("" if can else ": the management device cannot offer it"),
        )
    return params


def _config_params(mgmt: MgmtDev, offered: int) -> dict[str, ParamSpec]:
    params: dict[str, ParamSpec] = {}
    if offered >> F_NET_MAC & 1:
        params["mac"] = ParamSpec(
            type="str", init_value=MAC_OFF, off_value=MAC_OFF, description="the MAC address the device is made with"
        )
    if offered >> F_NET_MTU & 1:
        params["mtu"] = ParamSpec(
            type="int",
            init_value=DEFAULT_MTU,
            off_value=DEFAULT_MTU,
            allowed_values=[MTU_RANGE],
            description="the MTU the device is made with",
        )
    pairs = (mgmt.max_supported_vqs or 0) // 2 if offered >> F_NET_MQ & 1 else 1
    params["max_vqp"] = ParamSpec(
        type="int",
        init_value=1,
        off_value=1,
        allowed_values=[f"1-{max(pairs, 1)}"] if pairs > 1 else [1],
        description="queue pairs the device is made with (more than 1 needs MQ)",
    )
    return params


@contextmanager
def _as_found(what: str) -> Iterator[None]:
    """Documents are built from what the kernel answered, which the formats may refuse (a name with white space,
    a device class no format knows): that is an error on the device, not a crash."""
    try:
        yield
    except ValidationError as exc:
        raise DevmigError(f"{what}: cannot be described: {problem(exc)}") from None


def capabilities(mgmt: MgmtDev) -> list[TypeCapability]:
    """One capability per class the management device supports."""
    caps = []
    for name in mgmt.supported_classes:
        device_id = class_id(name)
        offered = mgmt.dev_features or 0
        with _as_found(f"vdpa management device {mgmt.handle}"):
            params = _feature_params(offered, device_id)
            if device_id == VirtioId.NET:
                params.update(_config_params(mgmt, offered))
            caps.append(
                TypeCapability(
                    device_api=DEVICE_API,
                    type=type_name(mgmt.handle, device_id),
                    software_version=VERSION,
                    api={"class": name},
                    models={MODELS[device_id]: ModelSpec(params=params)},
                )
            )
    return caps


def descriptor(dev: VdpaDev, config: DevConfig) -> DeviceDescriptor:
    """The source descriptor: the features the guest negotiated (those offered, before negotiation) and the
    configuration that differs from its off value."""
    features = config.negotiated_features if config.negotiated_features is not None else config.device_features
    params: dict[str, ParamValue] = {feature_param(n): True for n in feature_names(features or 0, dev.device_id)}
    net = config.net
    if net is not None:
        if net.mac is not None and net.mac != MAC_OFF:
            params["mac"] = net.mac
        if net.mtu is not None and net.mtu != DEFAULT_MTU:
            params["mtu"] = net.mtu
        if net.max_vqp is not None and net.max_vqp > 1:
            params["max_vqp"] = net.max_vqp
    with _as_found(f"vdpa device {dev.name}"):
        return DeviceDescriptor(
            device_api=DEVICE_API,
            type=type_name(dev.mgmtdev, dev.device_id),
            model=MODELS.get(dev.device_id),
            software_version=VERSION,
            api={"class": CLASS_NAMES.get(dev.device_id, str(dev.device_id))},
            params=params,
        )
