"""`devmig libvirt annotate` as a user runs it: against libvirt's test driver (a node file of domains, read by the
child process; or test:///default, in this process, to read the metadata back), with a simulated lab host's
devices."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pytest

from devmig.cli import main
from devmig.libvirt import metadata
from tests.cli.conftest import run_devmig
from tests.domains.builders import GONE_UUID, GPU_UUID, VF, domain_xml, mdev_hostdev, pci_hostdev
from tests.domains.driver import TEST_URI, metadata_text, needs_libvirt


@pytest.fixture
def node(tmp_path: Path) -> str:
    """A test-driver URI whose node holds two running domains: vm1 with alpha's vGPU and VF, vm2 with a vGPU no
    host has and the VF."""
    path = tmp_path / "node.xml"
    vm1 = domain_xml(mdev_hostdev(GPU_UUID), pci_hostdev(VF, "mlx5_vfio_pci"), name="vm1")
    vm2 = domain_xml(mdev_hostdev(GONE_UUID), pci_hostdev(VF), name="vm2").replace("1de7bf4e", "2de7bf4e")
    path.write_text(f"<node>\n{vm1}{vm2}</node>\n")
    return f"test://{path}"


@needs_libvirt
def test_annotate_text_json_and_exit_codes(node: str) -> None:
    done = run_devmig("libvirt", "annotate", "vm1", "-c", node, "--host", "sim:alpha")
    assert done.code == 0, done.err
    lines = done.out.splitlines()
    assert lines[0] == f"domain vm1 (1de7bf4e-3d7b-41a5-ae79-4743fa6bfc2d) at {node}, devices on sim:alpha:"
    assert lines[1].split() == [
        "mdev",
        GPU_UUID,
        "ua-gpu0",
        "vfio-pci",
        "simgpu-2G",
        "model",
        "devmig.sim/gpu",
        "version",
        "1.2.0",
        "(declared)",
    ]
    assert lines[2].split()[:4] == ["pci", VF, "-", "vfio-pci"]
    assert lines[-1] == "metadata set (live and config): 2 of 2 hostdev(s) described"

    data = json.loads(run_devmig("libvirt", "annotate", "vm1", "-c", node, "--host", "sim:alpha", "-j").out)
    assert (data["domain"], data["namespace"], data["live"], data["config"], data["complete"]) == (
        "vm1",
        metadata.NAMESPACE,
        True,
        True,
        True,
    )
    gpu, vf = data["hostdevs"]
    assert (gpu["kind"], gpu["address"], gpu["alias"], gpu["model"]) == ("mdev", GPU_UUID, "ua-gpu0", "vfio-pci")
    assert gpu["descriptor"]["address"] == {"kind": "mdev", "id": GPU_UUID}
    assert (vf["model"], vf["descriptor"]["address"]) == ("mlx5_vfio_pci", {"kind": "pci", "id": VF})
    # the descriptor is the one `devmig describe` prints
    assert vf["descriptor"] == json.loads(run_devmig("describe", VF, "--host", "sim:alpha").out)

    partial = run_devmig("libvirt", "annotate", "vm2", "-c", node, "--host", "sim:alpha")
    assert partial.code == 1 and "metadata set (live and config): 1 of 2 hostdev(s) described" in partial.out
    assert f"not described: hostdev mdev {GONE_UUID} (alias ua-gpu0) on sim:alpha: device {GONE_UUID}: not found" in (
        partial.out
    )
    partial_json = json.loads(run_devmig("libvirt", "annotate", "vm2", "-c", node, "--host", "sim:alpha", "-j").out)
    assert partial_json["complete"] is False and "error" in partial_json["hostdevs"][0]


@needs_libvirt
@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (["nope"], 2, "devmig: error: domain nope: not found at test://"),
        (["vm1", "-c", "test:///nonexistent/node.xml"], 1, "devmig: error: libvirt at test:///nonexistent/node.xml: "),
        (["vm1", "--host", "sim:nohost"], 2, "devmig: error: "),
    ],
)
def test_annotate_errors_are_one_line_with_their_exit_code(node: str, args: list[str], code: int, message: str) -> None:
    if "-c" not in args:
        args = [*args, "-c", node]
    done = run_devmig("libvirt", "annotate", *args)
    assert done.code == code and done.err.startswith(message), done.err
    assert "Traceback" not in done.err and len(done.err.splitlines()) == 1


@needs_libvirt
def test_annotate_in_process_sets_what_the_api_reads_back(capsys: pytest.CaptureFixture[str]) -> None:
    import libvirt

    conn = libvirt.open(TEST_URI)
    dom = conn.createXML(domain_xml(mdev_hostdev(GPU_UUID), name="vm-cli").replace("1de7bf4e", "3de7bf4e"), 0)
    try:
        assert main(["libvirt", "annotate", "vm-cli", "--connect", TEST_URI, "--host", "sim:alpha", "-j"]) == 0
        printed: dict[str, Any] = json.loads(capsys.readouterr().out)
        assert printed["config"] is False  # a transient domain has no definition to change
        text = metadata_text(dom)
        assert text is not None
        stored = metadata.from_api(text, "vm-cli").descriptors
        assert {a: d.model_dump(mode="json", exclude_none=True) for a, d in stored.items()} == {
            GPU_UUID: printed["hostdevs"][0]["descriptor"]
        }
    finally:
        dom.destroy()
        conn.close()


def test_without_the_binding_annotate_says_how_to_install_it(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setitem(sys.modules, "libvirt", None)
    assert main(["libvirt", "annotate", "vm1", "--host", "sim:alpha"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("devmig: error: the libvirt Python binding is not installed") and "devmig[libvirt]" in err
