"""What each `vdpa` command asks the backend and prints: one function per command, over the family's answers."""

from __future__ import annotations

import errno
from collections.abc import Callable
from typing import Any

from devmig.vdpa.backend import VdpaBackend, VdpaError
from devmig.vdpa.iproute2 import render
from devmig.vdpa.iproute2.output import Output

#: a command's arguments by keyword ("dev" and "mgmtdev" positionals too)
Args = dict[str, Any]

#: one command's work: ask the backend, print the answer; a warning the kernel sent with its ack, or None
Run = Callable[[VdpaBackend, Args, Output], str | None]


def mgmtdev_show(backend: VdpaBackend, args: Args, out: Output) -> None:
    found = [backend.mgmtdev(args["mgmtdev"])] if "mgmtdev" in args else backend.mgmtdevs()
    for dev in found:
        render.mgmtdev(out, dev)


def dev_show(backend: VdpaBackend, args: Args, out: Output) -> None:
    found = [backend.device(args["dev"])] if "dev" in args else backend.devices()
    for dev in found:
        render.dev(out, dev)


def dev_add(backend: VdpaBackend, args: Args, out: Output) -> None:
    backend.add(
        args["name"],
        args["mgmtdev"],
        device_features=args.get("device_features"),
        mac=args.get("mac"),
        mtu=args.get("mtu"),
        max_vqp=args.get("max_vqp"),
    )


def dev_del(backend: VdpaBackend, args: Args, out: Output) -> None:
    backend.delete(args["dev"])


def dev_set(backend: VdpaBackend, args: Args, out: Output) -> str | None:
    return backend.set(args["name"], mac=args.get("mac"))


def config_show(backend: VdpaBackend, args: Args, out: Output) -> None:
    # The seam has no config dump: the kernel's walks the devices, so does this.
    names = [args["dev"]] if "dev" in args else [dev.name for dev in backend.devices()]
    for cfg in [backend.config(name) for name in names]:
        render.config(out, cfg)


def vstats_show(backend: VdpaBackend, args: Args, out: Output) -> None:
    if "qidx" not in args:
        # iproute2 sends the request without a queue index; the kernel answers EINVAL without a message
        raise VdpaError(errno.EINVAL, request=f"dev vstats show {args['dev']}")
    render.vstats(out, backend.vstats(args["dev"], args["qidx"]))


__all__ = ["Args", "Run", "config_show", "dev_add", "dev_del", "dev_set", "dev_show", "mgmtdev_show", "vstats_show"]
