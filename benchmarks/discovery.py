#!/usr/bin/env python3
"""Discovery benchmark: devmig against mdevctl on one fake sysfs tree, whole processes, one namespace.

Builds a sysfs tree with `devmig.testing.sysfs_tree.SysfsTree` (PCI mdev parents, their types, and mdev instances
spread round-robin over parents and types), then runs ONE private mount namespace (`unshare -m`) in which the
tree's sys/ and etc/mdevctl.d are bind mounted over /sys and /etc/mdevctl.d. Inside it, the same timing loop runs
every command as a whole process: mdevctl (which only reads the real paths), devmig with its default root /, and the
bare interpreters. All commands therefore see the same mounts and the same machine state.

    sudo .venv/bin/python benchmarks/discovery.py [--parents 64 --types 8 --instances 10000 --runs 7]
                                                   [--write docs/performance.md]

Beside them it times the floor of each in Python (benchmarks/discovery_floor.py: the venv interpreter making the
same kernel reads with no logic). Before timing, devmig's modules are compiled to bytecode, as pip compiles a
package it installs (an editable install has no such step, and $PYTHONDONTWRITEBYTECODE keeps Python from caching
them on its own).

Needs root (for the namespace and the bind mounts), unshare (util-linux) and mdevctl. Exit codes: 0 ok (the aims
are reported, not enforced), 1 a command failed, 2 a missing prerequisite or bad usage.
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from machine import machine, write_section

REPO = Path(__file__).resolve().parents[1]
BEGIN = "<!-- discovery:begin -->"
END = "<!-- discovery:end -->"
FLOOR = Path(__file__).resolve().with_name("discovery_floor.py")
#: The aims (issue 15): `devmig types -j` at most this many times `mdevctl types --dumpjson`...
TYPES_RATIO = 2.0
#: ... and `devmig --help` at most this much slower than the venv interpreter's bare start.
HELP_BUDGET_MS = 25.0

# The commands, in table order: label -> argv. "{devmig}", "{venv_python}" and "{floor}" are filled in at run time.
COMMANDS: dict[str, list[str]] = {
    "mdevctl list --dumpjson": ["mdevctl", "list", "--dumpjson"],
    "mdevctl types --dumpjson": ["mdevctl", "types", "--dumpjson"],
    "devmig list -j": ["{devmig}", "list", "-j"],
    "devmig types -j": ["{devmig}", "types", "-j"],
    "devmig list --format mdevctl": ["{devmig}", "list", "--format", "mdevctl"],
    "devmig types --format mdevctl": ["{devmig}", "types", "--format", "mdevctl"],
    "devmig --help": ["{devmig}", "--help"],
    "floor: list reads in Python": ["{venv_python}", "{floor}", "list"],
    "floor: types reads in Python": ["{venv_python}", "{floor}", "types"],
    "venv python -c pass": ["{venv_python}", "-c", "pass"],
}
#: Each devmig figure's peer: the command it is measured against.
PEERS: dict[str, str] = {
    "devmig list -j": "mdevctl list --dumpjson",
    "devmig types -j": "mdevctl types --dumpjson",
    "devmig list --format mdevctl": "mdevctl list --dumpjson",
    "devmig types --format mdevctl": "mdevctl types --dumpjson",
    "devmig --help": "venv python -c pass",
    "floor: list reads in Python": "mdevctl list --dumpjson",
    "floor: types reads in Python": "mdevctl types --dumpjson",
}
#: Pairs whose standard output must be byte-identical.
IDENTICAL: list[tuple[str, str]] = [
    ("devmig list --format mdevctl", "mdevctl list --dumpjson"),
    ("devmig types --format mdevctl", "mdevctl types --dumpjson"),
]

DESCRIPTIONS = [
    "low_gm_size: 64MB\nhigh_gm_size: 384MB\nfence: 4\nresolution: 1024x768\nweight: 2",
    "low_gm_size: 128MB\nhigh_gm_size: 512MB\nfence: 4\nresolution: 1920x1200\nweight: 4",
    "num_heads=4, frl_config=60, framebuffer=1024M, max_resolution=5120x2880, max_instance=16",
    "num_heads=1, frl_config=60, framebuffer=2048M, max_resolution=4096x2160, max_instance=8",
]


class PrerequisiteError(Exception):
    """A prerequisite is missing: one line on stderr, exit 2."""


# -- the tree ------------------------------------------------------------------------------------------------------


def mdev_uuid(index: int) -> str:
    """A fixed, random-looking UUID per instance, so sorted order differs from creation and readdir order."""
    digest = hashlib.sha256(f"devmig-bench-{index}".encode()).digest()[:16]
    return str(uuid.UUID(bytes=digest, version=4))


def pci_address(index: int) -> str:
    return f"{index // 6400:04x}:{0x10 + (index // 32) % 200:02x}:{index % 32:02x}.0"


def build_tree(root: Path, parents: int, types: int, instances: int) -> None:
    from devmig.testing.sysfs_tree import SysfsTree

    tree = SysfsTree(root)
    # mdevctl refuses to run without these (its environment self-check).
    tree.mkdir("etc/mdevctl.d/scripts.d/callouts")
    tree.mkdir("etc/mdevctl.d/scripts.d/notifiers")
    used = [[0] * types for _ in range(parents)]
    for k in range(instances):
        used[k % parents][(k // parents) % types] += 1
    parent_rels: list[str] = []
    for p in range(parents):
        address = pci_address(p)
        rel = tree.pci_function(address, 0x10DE, 0x1EB8, class_code=0x030200, driver="nvidia", iommu_group=p)
        tree.mdev_parent(address, rel)
        for t in range(types):
            tree.mdev_type(
                rel,
                f"nvidia-{222 + t}",
                available_instances=max(0, 32 - used[p][t]),
                name=f"GRID T4-{2**t}Q",
                description=DESCRIPTIONS[t % len(DESCRIPTIONS)],
            )
        parent_rels.append(rel)
    for k in range(instances):
        p, t = k % parents, (k // parents) % types
        tree.mdev(parent_rels[p], mdev_uuid(k), f"nvidia-{222 + t}", iommu_group=parents + k)


# -- the timing loop (runs inside the namespace) -------------------------------------------------------------------


def run_inner(tree: Path, argv_map: dict[str, list[str]], runs: int) -> dict[str, Any]:
    """Time every command `runs` times (after one warm-up each) in rotating order; return the raw figures."""
    env = {k: v for k, v in os.environ.items() if k != "DEVMIG_SYSFS_ROOT"}
    env.pop("MDEVCTL_LOG", None)
    mdev_bus = list(Path("/sys/class/mdev_bus").iterdir())
    mdevs = list(Path("/sys/bus/mdev/devices").iterdir())
    outputs: dict[str, bytes] = {}
    errors: dict[str, str] = {}
    for label, argv in argv_map.items():  # warm-up, output check, exit status check
        proc = subprocess.run(argv, cwd=tree, env=env, capture_output=True, check=False)
        outputs[label] = proc.stdout
        if proc.returncode != 0 or (proc.stderr and label != "devmig --help"):
            errors[label] = f"exit {proc.returncode}: {proc.stderr.decode(errors='replace').strip()[:300]}"
    times: dict[str, list[int]] = {label: [] for label in argv_map}
    labels = list(argv_map)
    for r in range(runs):
        order = labels[r % len(labels) :] + labels[: r % len(labels)]
        for label in order:
            start = time.perf_counter_ns()
            subprocess.run(argv_map[label], cwd=tree, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            times[label].append(time.perf_counter_ns() - start)
    identity = []
    for mine, theirs in IDENTICAL:
        a, b = outputs[mine], outputs[theirs]
        first = next((i for i, (x, y) in enumerate(zip(a, b, strict=False)) if x != y), min(len(a), len(b)))
        identity.append(
            {"devmig": mine, "mdevctl": theirs, "identical": a == b, "bytes": [len(a), len(b)], "first_diff": first}
        )
    return {
        "mdev_bus_entries": len(mdev_bus),
        "mdev_devices": len(mdevs),
        "times_ns": times,
        "stdout_bytes": {label: len(out) for label, out in outputs.items()},
        "errors": errors,
        "identity": identity,
    }


# -- the machine ---------------------------------------------------------------------------------------------------


def filesystem(path: Path) -> str:
    best, fstype = "", "?"
    for line in Path("/proc/mounts").read_text().splitlines():
        fields = line.split()
        mount = fields[1].replace("\\040", " ")
        inside = str(path) == mount or str(path).startswith(mount.rstrip("/") + "/")
        if inside and len(mount) >= len(best):
            best, fstype = mount, fields[2]
    return fstype


# -- the report ----------------------------------------------------------------------------------------------------


@dataclass
class Figure:
    median: float
    minimum: float


def figures(times_ns: dict[str, list[int]]) -> dict[str, Figure]:
    return {k: Figure(statistics.median(v) / 1e6, min(v) / 1e6) for k, v in times_ns.items()}


def table(figs: dict[str, Figure]) -> list[str]:
    rows = [
        "| command | median ms | min ms | peer | peer median ms | devmig vs peer (median) |",
        "|---|--:|--:|---|--:|--:|",
    ]
    for label, fig in figs.items():
        peer = PEERS.get(label)
        if peer:
            pf = figs[peer]
            extra = f"`{peer}` | {pf.median:.1f} | {fig.median / pf.median:.2f}x ({fig.median - pf.median:+.1f} ms)"
        else:
            extra = " | | "
        rows.append(f"| `{label}` | {fig.median:.1f} | {fig.minimum:.1f} | {extra} |")
    return rows


def aims(figs: dict[str, Figure]) -> list[str]:
    def verdict(ok: bool) -> str:
        return "**pass**" if ok else "**FAIL**"

    lines = []
    peer = figs["mdevctl list --dumpjson"]
    for label in ("devmig list -j", "devmig list --format mdevctl"):
        mine = figs[label]
        lines.append(
            f"- `{label}` no slower than `mdevctl list --dumpjson`: {verdict(mine.median <= peer.median)} "
            f"({mine.median:.1f} ms vs {peer.median:.1f} ms, median)."
        )
    mine, peer = figs["devmig types -j"], figs["mdevctl types --dumpjson"]
    floor = figs["floor: types reads in Python"]
    lines.append(
        f"- `devmig types -j` within {TYPES_RATIO:g}x of `mdevctl types --dumpjson`: "
        f"{verdict(mine.median <= TYPES_RATIO * peer.median)} ({mine.median / peer.median:.2f}x: {mine.median:.1f} ms "
        f"vs {peer.median:.1f} ms; the Python floor, the venv interpreter making the same reads with no logic, "
        f"takes {floor.median:.1f} ms, {floor.median / peer.median:.2f}x)."
    )
    mine, bare = figs["devmig --help"], figs["venv python -c pass"]
    over = mine.median - bare.median
    lines.append(
        f"- `devmig --help` within {HELP_BUDGET_MS:.0f} ms of the venv interpreter's bare start (`venv python -c "
        f"pass`): {verdict(over <= HELP_BUDGET_MS)} ({over:+.1f} ms: {mine.median:.1f} ms vs {bare.median:.1f} ms)."
    )
    return lines


def report(
    result: dict[str, Any], info: dict[str, str], args: argparse.Namespace, fs: str, build_s: float, when: str
) -> str:
    figs = figures(result["times_ns"])
    lines = [
        f"Run {when} by `benchmarks/discovery.py --parents {args.parents} --types {args.types} "
        f"--instances {args.instances} --runs {args.runs}`.",
        "",
        "Machine:",
        "",
    ]
    lines += [f"- {key}: {value}" for key, value in info.items()]
    lines += [
        "",
        f"Tree: {args.parents} PCI parents x {args.types} types = {args.parents * args.types} types, "
        f"{args.instances:,} active mdevs (round-robin over parents and types, each with its own IOMMU group), "
        f"built with `SysfsTree` in {build_s:.1f} s on {fs}; seen in the namespace as "
        f"{result['mdev_bus_entries']} `/sys/class/mdev_bus` entries and {result['mdev_devices']:,} "
        "`/sys/bus/mdev/devices` entries.",
        "",
        f"Each command ran as a whole process, once to warm up and then {args.runs} times in rotating order, from one "
        "timing loop inside one `unshare -m` namespace (wall time around `subprocess.run`, stdout and stderr to "
        "/dev/null, warm page cache). devmig runs as its console script with its default root `/`, i.e. it reads "
        "the same bind-mounted `/sys` as mdevctl, with its modules compiled to bytecode beforehand (as pip compiles "
        "an installed package's). `venv python -c pass` is the interpreter of the console script; the floors are that "
        "interpreter making the kernel reads devmig makes, with no logic and no output "
        "(`benchmarks/discovery_floor.py`).",
        "",
        *table(figs),
        "",
        "Every run, in ms, in the order run:",
        "",
        *(
            f"- `{label}`: {', '.join(f'{ns / 1e6:.1f}' for ns in times)}"
            for label, times in result["times_ns"].items()
        ),
        "",
        "stdout bytes: "
        + ", ".join(f"`{label}` {n:,}" for label, n in result["stdout_bytes"].items() if label in PEERS or n > 0)
        + ".",
        "",
        "Output check (one run each, byte for byte):",
        "",
    ]
    for check in result["identity"]:
        status = "identical" if check["identical"] else f"DIFFERENT (first difference at byte {check['first_diff']:,})"
        lines.append(
            f"- `{check['devmig']}` vs `{check['mdevctl']}`: {status} "
            f"({check['bytes'][0]:,} vs {check['bytes'][1]:,} bytes)."
        )
    lines += ["", "Aims:", "", *aims(figs)]
    return "\n".join(lines) + "\n"


# -- main ----------------------------------------------------------------------------------------------------------


def check_prerequisites(devmig: Path) -> None:
    if os.geteuid() != 0:
        raise PrerequisiteError("must run as root (it needs a private mount namespace and bind mounts over /sys)")
    for tool, package in (("unshare", "util-linux"), ("mount", "mount"), ("mdevctl", "mdevctl")):
        if shutil.which(tool) is None:
            raise PrerequisiteError(f"{tool} not found on PATH (install the {package} package)")
    if not os.access(devmig, os.X_OK):
        raise PrerequisiteError(f"{devmig} not found (set up the venv: scripts/setup, or pass --devmig)")
    if not Path("/etc/mdevctl.d").is_dir():
        raise PrerequisiteError("/etc/mdevctl.d does not exist (reinstall mdevctl); it is the bind mount point")


def interpreter_of(script: Path) -> str:
    """The interpreter a console script runs on: its #! line."""
    with script.open("rb") as f:
        first = f.readline().decode(errors="replace")
    if not first.startswith("#!"):
        raise PrerequisiteError(f"{script} has no #! line")
    return first[2:].strip().split()[0]


def compile_package(venv_python: str) -> None:
    """Compile the devmig package the console script imports, as pip does at install time, so each run loads its
    bytecode rather than compiling every module again."""
    where = subprocess.run(
        [venv_python, "-c", "import devmig, os; print(os.path.dirname(devmig.__file__))"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    subprocess.run([venv_python, "-m", "compileall", "-q", where], stdout=subprocess.DEVNULL, check=True)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--parents", type=int, default=64, help="mdev parent PCI functions (default 64)")
    parser.add_argument("--types", type=int, default=8, help="mdev types per parent (default 8)")
    parser.add_argument("--instances", type=int, default=10000, help="active mdevs (default 10000)")
    parser.add_argument("--runs", type=int, default=7, help="timed runs per command, after one warm-up (default 7)")
    parser.add_argument("--write", metavar="DOC", type=Path, help="replace the discovery section of DOC")
    parser.add_argument("--devmig", type=Path, default=REPO / ".venv/bin/devmig", help="the devmig console script")
    parser.add_argument("--tmpdir", type=Path, help="build the tree under this directory (default: $TMPDIR or /tmp)")
    parser.add_argument("--keep", action="store_true", help="keep the tree and print where it is")
    parser.add_argument("--inner", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--argv-json", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if min(args.parents, args.types, args.runs) < 1 or args.instances < 0:
        parser.error("--parents, --types and --runs must be at least 1, --instances at least 0")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if args.inner is not None:  # we are the timing loop inside the namespace
        json.dump(run_inner(args.inner, json.loads(args.argv_json), args.runs), sys.stdout)
        return 0
    try:
        devmig = args.devmig.absolute()
        check_prerequisites(devmig)
        venv_python = interpreter_of(devmig)
    except PrerequisiteError as exc:
        print(f"discovery.py: {exc}", file=sys.stderr)
        return 2
    argv_map = {
        label: [a.format(devmig=str(devmig), venv_python=venv_python, floor=str(FLOOR)) for a in argv]
        for label, argv in COMMANDS.items()
    }
    try:
        compile_package(venv_python)
    except subprocess.CalledProcessError as exc:
        print(f"discovery.py: compiling devmig's modules failed: {exc}", file=sys.stderr)
        return 1
    tree = Path(tempfile.mkdtemp(prefix="devmig-bench-", dir=args.tmpdir))
    try:
        print(f"building {args.parents}x{args.types} types, {args.instances} mdevs in {tree} ...", file=sys.stderr)
        start = time.perf_counter()
        build_tree(tree, args.parents, args.types, args.instances)
        build_s = time.perf_counter() - start
        fs = filesystem(tree)
        info = machine(venv_python)
        when = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
        print(f"built in {build_s:.1f} s; timing {len(argv_map)} commands x {args.runs} runs ...", file=sys.stderr)
        shell = (
            'mount --bind "$1/sys" /sys && mount --bind "$1/etc/mdevctl.d" /etc/mdevctl.d && '
            'exec "$2" "$3" --inner "$1" --runs "$4" --argv-json "$5"'
        )
        namespace = ["unshare", "-m", "--propagation", "private", "sh", "-c", shell, "sh", str(tree)]
        proc = subprocess.run(
            [*namespace, sys.executable, str(Path(__file__).resolve()), str(args.runs), json.dumps(argv_map)],
            capture_output=True,
            text=True,
            check=False,
        )
        if proc.returncode != 0:
            print(f"discovery.py: the namespace run failed: {proc.stderr.strip()}", file=sys.stderr)
            return 1
        result: dict[str, Any] = json.loads(proc.stdout)
    finally:
        if args.keep:
            print(f"tree kept in {tree}", file=sys.stderr)
        else:
            shutil.rmtree(tree, ignore_errors=True)
    body = report(result, info, args, f"{fs} (`{tree.parent}`)", build_s, when)
    print(body)
    if result["errors"]:
        for label, message in result["errors"].items():
            print(f"discovery.py: `{label}` failed: {message}", file=sys.stderr)
        return 1
    if args.write is not None:
        write_section(args.write, BEGIN, END, "Discovery", body)
        print(f"wrote {args.write}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
