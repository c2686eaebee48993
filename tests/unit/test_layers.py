"""The package graph of src/devmig is the tree docs/architecture.md draws, and the pure core stays pure.

Every import is walked, those inside functions and under TYPE_CHECKING included: an import deferred for start-up
time is still an edge. A failure names the importing module, its line and the rule it breaks. What the read-only
commands load at run time (no pydantic, no click on the quick path) is tests/cli/test_read_path_imports.py's.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[2] / "src"
PACKAGE = SRC / "devmig"

#: Each package (or top-level module) of devmig and the ones it may import. Read bottom-up, it is the tree:
#: model <- compat <- (vdpa, host, migrate) <- (sim, provision, fleet) <- machine <- (tour, libvirt, agent) <- cli;
#: mdevctl (the callout) sits on host and compat only, and dropin (a script in another program's directory) on errors.
ALLOWED: dict[str, frozenset[str]] = {
    "errors": frozenset(),
    "signals": frozenset({"errors"}),
    "state": frozenset({"errors"}),
    "config": frozenset({"errors"}),
    "dropin": frozenset({"errors", "state"}),
    "model": frozenset({"errors"}),
    "compat": frozenset({"errors", "model"}),
    "vdpa": frozenset({"errors"}),
    "host": frozenset({"errors", "model", "vdpa"}),
    "migrate": frozenset({"errors", "signals", "config", "model", "compat", "host"}),
    "sim": frozenset({"errors", "model", "host", "vdpa", "migrate"}),
    "provision": frozenset({"errors", "signals", "state", "model", "compat", "host"}),
    "fleet": frozenset({"errors", "state", "model", "compat", "host", "vdpa"}),
    "testing": frozenset({"errors", "host", "vdpa"}),
    "machine": frozenset({"errors", "state", "model", "host", "vdpa", "migrate", "sim"}),
    "tour": frozenset({"errors", "model", "compat", "host", "migrate", "provision", "sim", "machine"}),
    "libvirt": frozenset(
        {"errors", "state", "config", "dropin", "model", "compat", "host", "migrate", "provision", "fleet", "machine"}
    ),
    "mdevctl": frozenset({"errors", "dropin", "model", "compat", "host"}),
    "agent": frozenset({"errors", "config", "model", "host", "vdpa", "fleet", "machine"}),
    "cli": frozenset(
        {
            "errors",
            "signals",
            "state",
            "config",
            "model",
            "compat",
            "vdpa",
            "host",
            "migrate",
            "sim",
            "provision",
            "fleet",
            "machine",
            "tour",
            "libvirt",
            "mdevctl",
            "agent",
        }
    ),
    "__main__": frozenset({"cli"}),
    "__init__": frozenset(),
}

#: Where a package may reach into another only through its seam: the simulator implements the kernel's interfaces
#: and must not use the code it stands in for, nor the code under test (its drivers parse and validate as a driver
#: would, so it stays an independent oracle).
VDPA_SEAM = frozenset({"devmig.vdpa.backend", "devmig.vdpa.family", "devmig.vdpa.records", "devmig.vdpa.virtio"})
SEAMS_ONLY: dict[tuple[str, str], frozenset[str]] = {
    ("sim", "host"): frozenset({"devmig.host.sysfs"}),
    ("sim", "migrate"): frozenset({"devmig.migrate.device", "devmig.migrate.fsm", "devmig.migrate.uapi"}),
    # lab files are devmig's own format, read with its strict loader; nothing else of the model
    ("sim", "model"): frozenset({"devmig.model.load"}),
    ("sim", "vdpa"): VDPA_SEAM,
    ("host", "vdpa"): VDPA_SEAM,
}

#: What the pure core never imports: files, sockets, processes, the clock, threads, system calls.
IO_MODULES = frozenset(
    {
        "os",
        "io",
        "pathlib",
        "shutil",
        "tempfile",
        "glob",
        "socket",
        "ssl",
        "select",
        "selectors",
        "subprocess",
        "signal",
        "fcntl",
        "ctypes",
        "mmap",
        "time",
        "datetime",
        "threading",
        "multiprocessing",
        "asyncio",
        "sqlite3",
        "urllib",
        "http",
        "logging",
        "random",
        "secrets",
        "importlib",
    }
)
PURE = frozenset({"model", "compat"})


@dataclass(frozen=True)
class Edge:
    source: str  # devmig.x.y
    target: str  # the imported module, absolute
    line: int

    def where(self) -> str:
        return f"{self.source}:{self.line} imports {self.target}"


def module_name(path: Path) -> str:
    parts = list(path.relative_to(SRC).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def edges_of(path: Path) -> Iterator[Edge]:
    """Every import of one file, resolved to an absolute module name (a relative import included)."""
    name = module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield Edge(name, alias.name, node.lineno)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                target = ".".join([*base, *([node.module] if node.module else [])])
            else:
                target = node.module or ""
            yield Edge(name, target, node.lineno)
            # `from devmig.x import y` may name a module y: it is an edge to devmig.x.y too
            for alias in node.names:
                if (PACKAGE / Path(*target.split(".")[1:]) / f"{alias.name}.py").is_file() or (
                    PACKAGE / Path(*target.split(".")[1:]) / alias.name / "__init__.py"
                ).is_file():
                    yield Edge(name, f"{target}.{alias.name}", node.lineno)


def all_edges() -> list[Edge]:
    return [edge for path in sorted(PACKAGE.rglob("*.py")) for edge in edges_of(path)]


def room(module: str) -> str:
    """The package (or top-level module) a devmig module lives in: devmig.host.sysfs -> host."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def violations(edges: list[Edge]) -> list[str]:
    found = []
    for edge in edges:
        src = room(edge.source)
        top = edge.target.split(".")[0]
        if src in PURE and top in IO_MODULES:
            found.append(f"{edge.where()}: {src}/ is the pure core and imports no I/O module")
        if top != "devmig":
            continue
        dst = room(edge.target)
        if dst == src or edge.target == "devmig":
            continue
        if src not in ALLOWED:
            found.append(f"{edge.where()}: {src} is not in the architecture's table (tests/unit/test_layers.py)")
            continue
        if dst not in ALLOWED[src]:
            found.append(f"{edge.where()}: {src} may not import {dst} (allowed: {', '.join(sorted(ALLOWED[src]))})")
            continue
        seam = SEAMS_ONLY.get((src, dst))
        if seam is not None and edge.target != f"devmig.{dst}" and edge.target not in seam:
            found.append(f"{edge.where()}: {src} reaches {dst} only through {', '.join(sorted(seam))}")
    return found


def test_every_package_imports_only_downward() -> None:
    problems = violations(all_edges())
    assert not problems, "\n".join(problems)


def test_the_table_is_a_tree() -> None:
    """No two rooms may import each other, directly or around a loop: the table itself has no cycle."""
    seen: dict[str, int] = {}

    def visit(node: str, path: tuple[str, ...]) -> None:
        assert node not in path, f"cycle in the table: {' -> '.join((*path, node))}"
        if seen.get(node) == 2:
            return
        for nxt in ALLOWED.get(node, ()):
            visit(nxt, (*path, node))
        seen[node] = 2

    for node in ALLOWED:
        visit(node, ())


def test_every_package_is_in_the_table() -> None:
    rooms = {room(module_name(p)) for p in PACKAGE.rglob("*.py")}
    assert rooms <= set(ALLOWED), f"packages the table does not place: {sorted(rooms - set(ALLOWED))}"


@pytest.mark.parametrize(
    ("source", "target", "why"),
    [
        ("devmig.model.x", "os", "pure core"),
        ("devmig.compat.x", "devmig.host.sysfs", "may not import"),
        ("devmig.host.x", "devmig.sim.lab", "may not import"),
        ("devmig.sim.kernel", "devmig.host.describe", "only through"),
        ("devmig.sim.tour", "devmig.provision", "may not import"),
        ("devmig.sim.x", "devmig.migrate.session", "only through"),
        ("devmig.migrate.vfio", "devmig.machine", "may not import"),
        ("devmig.newpkg.x", "devmig.model", "not in the architecture's table"),
        ("devmig.libvirt.annotate", "devmig.cli.options", "may not import"),
        ("devmig.libvirt.x", "devmig.tour", "may not import"),
    ],
)
def test_a_forbidden_edge_is_named(source: str, target: str, why: str) -> None:
    """The checker itself can fail: each kind of forbidden edge is reported with its rule."""
    (problem,) = violations([Edge(source, target, 7)])
    assert f"{source}:7 imports {target}" in problem and why in problem


def test_allowed_edges_pass() -> None:
    assert (
        violations([Edge("devmig.cli.lab", "devmig.tour.story", 1), Edge("devmig.sim.vfio", "devmig.migrate", 1)]) == []
    )
