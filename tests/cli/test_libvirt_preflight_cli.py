"""`devmig libvirt preflight` and `devmig libvirt migrate` as a user runs them: against libvirt's test driver (a
node file the child process reads), the devices of the default lab's alpha, and a destination published by
`devmig capabilities -j --host sim:HOST` or `devmig inventory publish`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from tests.cli.conftest import Result, run_devmig
from tests.domains.builders import GPU_UUID, VF, domain_xml, mdev_hostdev, pci_hostdev
from tests.domains.driver import needs_libvirt
from tests.paths import SCHEMAS

pytestmark = needs_libvirt

ALPHA = ("--host", "sim:alpha")


@pytest.fixture
def node(tmp_path: Path) -> str:
    """A test-driver URI whose node holds vm1 (alpha's vGPU and VF) and vm2 (the same, with a vIOMMU)."""
    path = tmp_path / "node.xml"
    vm1 = domain_xml(mdev_hostdev(GPU_UUID), pci_hostdev(VF, "mlx5_vfio_pci"), name="vm1")
    vm2 = vm1.replace("<name>vm1", "<name>vm2").replace("1de7bf4e", "2de7bf4e")
    vm2 = vm2.replace("<devices>", "<devices>\n    <iommu model='intel'/>")
    path.write_text(f"<node>\n{vm1}{vm2}</node>\n")
    return f"test://{path}"


@pytest.fixture
def caps(tmp_path: Path) -> Any:
    """The capabilities file of a lab host: what `devmig capabilities -j --host sim:HOST` prints on it."""

    def make(host: str) -> str:
        done = run_devmig("capabilities", "-j", "--host", f"sim:{host}")
        assert done.code == 0, done.err
        path = tmp_path / f"{host}.json"
        path.write_text(done.out)
        return str(path)

    return make


def preflight(node: str, *args: str) -> Result:
    return run_devmig("libvirt", "preflight", "vm1", "-c", node, *ALPHA, *args)


def items(out: str) -> list[tuple[str, str]]:
    """(severity, code) of each item line of the text report."""
    lines = out.split("items:\n", 1)[1].splitlines()[:-1] if "items:\n" in out else []
    return [(line.split()[0], line.split()[1]) for line in lines]


def test_nothing_blocks_a_migration_to_an_identical_host(node: str, caps: Any) -> None:
    beta = caps("beta")
    done = preflight(node, "--to", "beta", "--dest-capabilities", beta)
    assert done.code == 0, done.err
    lines = done.out.splitlines()
    assert lines[0] == (
        f"domain vm1 (1de7bf4e-3d7b-41a5-ae79-4743fa6bfc2d) at {node}, devices on sim:alpha; destination beta: "
        f"6 type(s) from {beta}"
    )
    assert lines[2].split() == [
        "mdev",
        GPU_UUID,
        "ua-gpu0",
        "simgpu-2G",
        "1.2.0",
        "(live)",
        "->",
        "simgpu-2G",
        "1.2.0:",
        "identical,",
        "4",
        "free",
    ]
    assert lines[3].split()[:2] == ["pci", VF] and lines[3].endswith("identical, 1 free")
    assert ("warning", "metadata-stale") in items(done.out)
    assert ("not-checked", "qemu-blockers-not-checked") in items(done.out)
    assert ("not-checked", "kernel-not-checked") in items(done.out)  # a capabilities file carries no kernel
    assert all(severity != "error" for severity, _ in items(done.out))
    assert lines[-1] == "result: nothing blocks the migration (0 error(s), 2 warning(s), 6 not checked)"

    data = json.loads(preflight(node, "--to", "beta", "--dest-capabilities", beta, "-j").out)
    jsonschema.validate(data, json.loads((SCHEMAS / "preflight.schema.json").read_text()))
    assert (data["blocking"], data["destination"]["name"], data["counts"]["error"]) == (False, "beta", 0)
    assert [d["target"] for d in data["devices"]] == ["simgpu-2G", "simnic_vfio_pci:1af4:10f2"]
    qemu = next(i for i in data["items"] if i["code"] == "qemu-blockers-not-checked")
    assert "not supported by the connection driver" in qemu["message"]


@pytest.mark.parametrize(
    ("host", "args", "vm", "errors"),
    [
        ("delta", [], "vm1", ["device-incompatible", "device-incompatible"]),
        ("zeta", [], "vm1", ["no-free-instance", "device-incompatible"]),
        ("beta", ["--postcopy"], "vm1", ["postcopy-requested"]),
        ("beta", [], "vm2", ["viommu"]),
    ],
    ids=["older-driver", "full", "postcopy", "viommu"],
)
def test_what_blocks_exits_1_with_every_reason(
    node: str, caps: Any, host: str, args: list[str], vm: str, errors: list[str]
) -> None:
    done = run_devmig(
        "libvirt", "preflight", vm, "-c", node, *ALPHA, "--to", host, "--dest-capabilities", caps(host), *args
    )
    assert done.code == 1, done.err
    assert [code for severity, code in items(done.out) if severity == "error"] == errors
    assert done.out.splitlines()[-1].startswith("result: blocked: the migration would fail")
    data = json.loads(
        run_devmig(
            "libvirt", "preflight", vm, "-c", node, *ALPHA, "--to", host, "--dest-capabilities", caps(host), *args, "-j"
        ).out
    )
    assert data["blocking"] is True and [i["code"] for i in data["items"] if i["severity"] == "error"] == errors


def test_the_fleet_store_gives_the_destinations_kernel(node: str, tmp_path: Path) -> None:
    store = str(tmp_path / "fleet.db")
    published = run_devmig("inventory", "publish", "--host", "sim:beta", "--store", store)
    assert published.code == 0, published.err
    data = json.loads(preflight(node, "--to", "beta", "--store", store, "-j").out)
    assert data["destination"]["origin"] == f"fleet store sqlite:///{store}"
    assert data["destination"]["kernel"] == "6.12.57+deb12-amd64"
    assert not [i for i in data["items"] if i["code"] == "kernel-not-checked"]
    assert [d["target"] for d in data["devices"]] == ["simgpu-2G", "simnic_vfio_pci:1af4:10f2"]


def test_descriptors_from_the_domains_metadata(node: str, caps: Any) -> None:
    done = preflight(node, "--to", "beta", "--dest-capabilities", caps("beta"), "--descriptors", "metadata")
    assert done.code == 1
    assert [code for severity, code in items(done.out) if severity == "error"] == ["no-metadata", "no-metadata"]


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (["--to", "beta", "--dest-capabilities", "DAMAGED"], 2, "devmig: error: DAMAGED: not valid JSON at line 1"),
        (["--to", "beta", "--dest-capabilities", "WRONG"], 2, "devmig: error: WRONG: capability [1]: $: missing"),
        (["--to", "beta", "--dest-capabilities", "MISSING"], 2, "devmig: error: MISSING: cannot read"),
        (["--to", "beta", "--store", "STORE"], 2, "devmig: error: host beta: not in store sqlite:///"),
        (
            ["--to", "beta", "--dest-capabilities", "GOOD", "-c", "test:///nonexistent/node.xml"],
            1,
            "devmig: error: libvirt at",
        ),
        (["--to", "beta", "--dest-capabilities", "GOOD", "--host", "sim:nohost"], 2, "devmig: error: "),
        (["--to", "beta", "--dest-capabilities", "GOOD", "--descriptors", "guess"], 2, "Usage: "),
        (["--dest-capabilities", "GOOD"], 2, "Usage: "),
    ],
    ids=["not-json", "invalid-capability", "no-file", "not-in-store", "no-libvirt", "no-host", "bad-choice", "no-to"],
)
def test_bad_input_is_one_clear_error(
    node: str, caps: Any, tmp_path: Path, args: list[str], code: int, message: str
) -> None:
    damaged, wrong = tmp_path / "damaged.json", tmp_path / "wrong.json"
    damaged.write_text('[{"device_api": "vfio-pci", ')
    wrong.write_text(json.dumps([json.loads(Path(caps("beta")).read_text())[0], {"device_api": "vfio-pci"}]))
    names = {
        "DAMAGED": str(damaged),
        "WRONG": str(wrong),
        "MISSING": str(tmp_path / "missing.json"),
        "STORE": str(tmp_path / "empty.db"),
        "GOOD": caps("beta"),
    }
    args = [names.get(a, a) for a in args]
    done = run_devmig("libvirt", "preflight", "vm1", *(["-c", node] if "-c" not in args else []), *ALPHA, *args)
    shown = message.replace("DAMAGED", str(damaged)).replace("WRONG", str(wrong)).replace("MISSING", names["MISSING"])
    assert done.code == code and shown in done.err, done.err
    assert "Traceback" not in done.err
    if code != 2 or not message.startswith("Usage"):
        assert len(done.err.splitlines()) == 1


def test_no_such_domain_is_bad_input(node: str, caps: Any) -> None:
    done = run_devmig(
        "libvirt", "preflight", "nope", "-c", node, *ALPHA, "--to", "beta", "--dest-capabilities", caps("beta")
    )
    assert done.code == 2 and done.err.startswith("devmig: error: domain nope: not found at test://"), done.err


def test_migrate_runs_each_phase_and_reports_libvirts_refusal(node: str, caps: Any) -> None:
    """The test driver cannot migrate: preflight and annotate run, libvirt's refusal is one line, exit 1."""
    beta = caps("beta")
    done = run_devmig(
        "libvirt", "migrate", "vm1", "qemu+tls://beta/system", "-c", node, *ALPHA, "--dest-capabilities", beta
    )
    assert done.code == 1
    assert done.err == (
        f"devmig: error: domain vm1 at {node}: libvirt's migration to qemu+tls://beta/system failed: argument "
        "unsupported: p2p migration is not supported by the source host; the domain still runs on the source\n"
    )
    lines = done.out.splitlines()
    assert lines[0].endswith(f"destination beta: 6 type(s) from {beta}")  # --to defaults to DEST_URI's host
    assert "metadata-stale" not in done.out  # annotate rewrites it before the migration: not a finding here
    assert lines[-3].startswith("result: nothing blocks the migration")
    assert lines[-2:] == ["annotate: 2 of 2 hostdev(s) described, metadata set (live and config)", "migrate: failed"]

    events = [
        json.loads(line)
        for line in run_devmig(
            "libvirt", "migrate", "vm1", "qemu+tls://beta/system", "-c", node, *ALPHA, "--dest-capabilities", beta, "-j"
        ).out.splitlines()
    ]
    assert [(e["event"], e["phase"], e["state"]) for e in events] == [
        ("phase", "preflight", "start"),
        ("phase", "preflight", "done"),
        ("phase", "annotate", "start"),
        ("phase", "annotate", "done"),
        ("phase", "migrate", "start"),
        ("phase", "migrate", "failed"),
    ]
    assert events[1]["result"]["blocking"] is False and events[3]["result"]["complete"] is True
    assert events[5]["message"].endswith("the domain still runs on the source")


def test_migrate_refuses_what_preflight_blocks(node: str, caps: Any) -> None:
    done = run_devmig(
        "libvirt", "migrate", "vm1", "qemu+tls://delta/system", "-c", node, *ALPHA, "--dest-capabilities", caps("delta")
    )
    assert done.code == 1
    assert done.err.startswith(f"devmig: error: domain vm1 at {node}: not migrated: 2 reason(s) it would fail: ")
    assert done.err.endswith("(--force migrates anyway)\n") and len(done.err.splitlines()) == 1
    assert "result: blocked: the migration would fail" in done.out and "annotate:" not in done.out


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["qemu+tls://beta/system", "--postcopy", "--force"], "--postcopy with --force: devmig never migrates"),
        (["qemu:///system"], "qemu:///system: names no host: give --to DEST"),
    ],
)
def test_migrate_bad_input(node: str, caps: Any, args: list[str], message: str) -> None:
    done = run_devmig("libvirt", "migrate", "vm1", *args, "-c", node, *ALPHA, "--dest-capabilities", caps("beta"))
    assert done.code == 2 and message in done.err and len(done.err.splitlines()) == 1, done.err


def test_migrates_json_lines_give_every_phase_and_its_progress_at_an_interval(
    capsys: pytest.CaptureFixture[str],
) -> None:
    from devmig.cli import progress
    from devmig.cli.options import Options
    from devmig.libvirt.migration import PhaseEvent

    clock = iter([10.0, 10.1, 10.3, 10.4])
    with progress.PhaseView(Options(json=True), "migrate vm1", clock=lambda: next(clock)) as view:
        view(PhaseEvent("migrate", "start", "to qemu+tls://beta/system"))
        for done in (1, 2, 3, 4):  # at 10.0, 10.1, 10.3, 10.4: the second and the fourth come too soon
            view(PhaseEvent("migrate", "progress", bytes=done * 1024, total=4096))
        view(PhaseEvent("migrate", "done", "vm1 runs at qemu+tls://beta/system"))
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [(e["event"], e["state"], e.get("bytes")) for e in lines] == [
        ("phase", "start", None),
        ("progress", "progress", 1024),
        ("progress", "progress", 3072),
        ("phase", "done", None),
    ]
