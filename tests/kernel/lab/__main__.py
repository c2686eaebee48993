"""The kernel lab's command line (scripts/kernel-lab): `prepare`, `headers`, `run [--env K=V] [--cwd D] -- CMD...`."""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

from tests.kernel.lab.assets import prepare
from tests.kernel.lab.errors import LabUnavailable
from tests.kernel.lab.guest import ENV_NAME_RE
from tests.kernel.lab.packages import Apt, install_uapi_headers
from tests.kernel.lab.qemu import run_in_guest


def _env_pair(text: str) -> tuple[str, str]:
    key, sep, value = text.partition("=")
    if not sep or not ENV_NAME_RE.match(key):
        raise argparse.ArgumentTypeError(f"expected NAME=VALUE, got {text!r}")
    return key, value


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="kernel-lab",
        description="Boot Debian's Linux 6.12 under QEMU (mtty, vdpa_sim, vfio-pci) and run a command",
    )
    parser.add_argument(
        "--cache",
        type=Path,
        default=None,
        help="cache directory (default: $DEVMIG_KERNEL_LAB_CACHE or ~/.cache/devmig/kernel-lab)",
    )
    sub = parser.add_subparsers(dest="action", required=True)
    p_prepare = sub.add_parser("prepare", help="install packages, build modules and the initramfs (as root)")
    p_prepare.add_argument("--refresh", action="store_true", help="ignore the stamp: re-resolve and rebuild")
    sub.add_parser("headers", help="install only the lab kernel's common headers, its uapi tree (as root)")
    p_run = sub.add_parser("run", help="run CMD in the guest (after `--`); exits with its exit code")
    p_run.add_argument("--cwd", default=None, help="working directory in the guest (default: the current one)")
    p_run.add_argument("--results", type=Path, default=None, help="host dir seen as /tmp/devmig-results (default: new)")
    p_run.add_argument("--timeout", type=float, default=300.0)
    p_run.add_argument("--memory", type=int, default=2048, help="guest memory in MiB")
    p_run.add_argument("--env", type=_env_pair, action="append", default=[], metavar="NAME=VALUE")
    p_run.add_argument("--quiet", action="store_true", help="print the command's output only, after the run")
    p_run.add_argument("command", nargs=argparse.REMAINDER)
    args = parser.parse_args(argv)
    try:
        if args.action == "prepare":
            started = time.monotonic()
            assets = prepare(args.cache, refresh=args.refresh)
            print(f"{assets.kernel_version} {assets.cache_dir} ({time.monotonic() - started:.2f} s)")
            return 0
        if args.action == "headers":
            kp = install_uapi_headers(Apt(lambda message: print(f"kernel-lab: {message}", file=sys.stderr)))
            print(f"{kp.common_headers} installed")
            return 0
        command = list(args.command)
        if command[:1] == ["--"]:
            command = command[1:]
        if not command:
            parser.error("run: no command (give it after `--`)")
        assets = prepare(args.cache)
        results = args.results or Path(tempfile.mkdtemp(prefix="devmig-kernel-lab-"))

        def echo(text: str) -> None:
            sys.stdout.write(text)
            sys.stdout.flush()

        run = run_in_guest(
            assets,
            command,
            cwd=args.cwd or str(Path.cwd()),
            results_dir=results,
            timeout=args.timeout,
            env=dict(args.env),
            memory_mb=args.memory,
            echo=None if args.quiet else echo,
        )
        if args.quiet:
            sys.stdout.write(run.output)
        state = "timed out" if run.timed_out else f"exit code {run.returncode}"
        print(f"kernel-lab: {state} after {run.seconds:.1f} s; results in {results}", file=sys.stderr)
        if run.timed_out:
            return 124
        return 125 if run.returncode is None else run.returncode
    except LabUnavailable as exc:
        print(f"kernel-lab: unavailable: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
