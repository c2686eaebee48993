"""`devmig lab` and `--host sim:...` as whole processes: the README's main job, end to end."""

from __future__ import annotations

import json
from pathlib import Path

from tests.cli.conftest import run_devmig

RUNNING = "6f1c0a2e-3b4d-4c5e-8f90-a1b2c3d4e5f6"


def test_lab_tells_the_story() -> None:
    result = run_devmig("lab")
    assert result.code == 0 and result.err == ""
    out = result.out
    assert f"1. The device: on alpha, {RUNNING} is running" in out
    assert "migration parameters memory=2048 aggregator=2 pv_mode=ppgtt" in out
    rows = {
        line.split()[0]: line.split()[1:4]
        for line in out.splitlines()
        if line.startswith("   ")
        and line.split()
        and line.split()[0] in ("beta", "gamma", "delta", "epsilon", "zeta", "eta")
    }
    assert rows == {
        "beta": ["simgpu-2G", "identical", "4"],
        "gamma": ["simgpu-2G", "compatible", "4"],
        "delta": ["simgpu-2G", "incompatible", "4"],
        "epsilon": ["simgpu-2G", "incompatible", "4"],
        "zeta": ["simgpu-2G", "identical", "0"],
        "eta": ["vfio_ap-passthrough", "incompatible", "4"],
    }
    assert "compression switched off" in out and "no free instance" in out
    assert "minor versions migrate forward only" in out and "no migration across majors (+1 more)" in out
    assert "3. Best destination: beta (simgpu-2G, identical, 4 free)." in out
    assert "5. devmig migrate to beta while the guest kept writing: " in out
    assert "the state arrived byte for byte." in out
    assert len(out.splitlines()) <= 30  # one screen


def test_lab_json_and_a_lab_file(tmp_path: Path) -> None:
    data = json.loads(run_devmig("lab", "-j").out)
    assert data["best"] == "beta" and data["source"]["descriptor"]["params"]["pv_mode"] == "ppgtt"
    verdicts = {h["host"]: h["verdict"]["level"] for h in data["hosts"]}
    assert verdicts["epsilon"] == "incompatible"
    lab = tmp_path / "two.json"
    lab.write_text(
        json.dumps(
            {
                "name": "two",
                "hosts": [
                    {
                        "name": "src",
                        "gpus": [
                            {
                                "address": "0000:00:02.0",
                                "release": "1.3.0",
                                "devices": [{"uuid": RUNNING, "type": "simgpu-1G"}],
                            }
                        ],
                    },
                    {"name": "old", "gpus": [{"address": "0000:00:02.0", "release": "1.0.0"}]},
                ],
            }
        )
    )
    none = run_devmig("lab", "--lab", str(lab))
    assert none.code == 1 and "3. No host can take it" in none.out


def test_bad_labs_are_one_line(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: x\nhosts:\n  - name: a\n    gpus: [{address: nope}]\n")
    result = run_devmig("lab", "--lab", str(bad))
    assert result.code == 2 and result.err.count("\n") == 1 and "$.hosts[0].gpus[0].address" in result.err
    missing = run_devmig("lab", "--lab", str(tmp_path / "none.yaml"))
    assert missing.code == 2 and "cannot read" in missing.err
    broken = tmp_path / "broken.yaml"
    broken.write_text("name: [x\n")
    assert "not valid YAML at line" in run_devmig("lab", "--lab", str(broken)).err
    surrogate = tmp_path / "surrogate.json"
    gpu = {
        "address": "0000:00:02.0",
        "devices": [{"uuid": RUNNING, "type": "simgpu-1G", "params": {"pv_mode": "\ud800"}}],
    }
    surrogate.write_text(json.dumps({"name": "x", "hosts": [{"name": "a", "gpus": [gpu]}, {"name": "b"}]}))
    result = run_devmig("lab", "--lab", str(surrogate))  # was an internal error: a UnicodeEncodeError in simgpu
    assert (result.code, result.err) == (
        2,
        f"devmig: error: {surrogate}: $.hosts[0].gpus[0].devices[0].params.pv_mode: not UTF-8 text: a lone "
        "surrogate '\\ud800' at character 0\n",
    )


def test_commands_work_on_lab_hosts() -> None:
    listed = json.loads(run_devmig("list", "-j", "--host", "sim:alpha").out)["devices"]
    assert {d["kind"] for d in listed} == {"mdev", "pci"}
    described = json.loads(run_devmig("describe", RUNNING, "--host", "sim:default/alpha").out)
    assert described["confidence"] == "declared" and described["params"]["aggregator"] == 2
    caps = json.loads(run_devmig("capabilities", "-j", "--host", "sim:epsilon", "-t", "simgpu-2G").out)
    assert caps["software_version"] == "2.0.0"
    info = json.loads(run_devmig("vfio", "info", RUNNING, "--host", "sim:alpha", "-j").out)
    assert info["migration"] == ["STOP_COPY", "P2P", "PRE_COPY"]
    created = run_devmig("mdev", "create", "0000:00:02.0", "simgpu-1G", "--host", "sim:beta")
    assert created.code == 0  # kept in the state directory: later commands see it
    assert run_devmig("list", "--host", "sim:nowhere").code == 2


VF = "0000:3b:00.2"


def test_lab_moves_each_kind_of_running_device() -> None:
    """--device picks any running device of the first host: alpha's vGPU (an mdev) and its VF (a PCI function on a
    variant driver); each is prepared on beta and its state moved there while the guest writes."""
    vf = run_devmig("lab", "--device", VF)
    assert vf.code == 0 and vf.err == "", vf.err
    out = vf.out
    assert f"1. The device: on alpha, {VF} is running" in out
    assert "against each host's free functions of its PCI identity" in out
    assert "gamma    -" in out and "no PCI function 1af4:10f2" in out
    assert f"4. devmig prepare on beta: claimed VF {VF} of 0000:3b:00.0 (simnic_vfio_pci:1af4:10f2)," in out
    assert "wrote queues=4 tso=true, each read back; for Nova: pci_dev_map_src_dst" in out
    assert json.dumps({VF: VF}) in out and "target_mdevs" not in out
    assert "5. devmig migrate to beta while the guest kept writing: " in out and "byte for byte." in out
    assert f"devmig describe --host sim:alpha {VF} | devmig plan - --host sim:beta" in out
    data = json.loads(run_devmig("lab", "--device", VF, "-j").out)
    assert data["source"]["device"] == VF and data["destination"] == "beta" and data["refused"] == []
    assert data["prepared"]["kind"] == "function" and data["prepared"]["mapping"] == {"pci_dev_map_src_dst": {VF: VF}}
    assert data["migrated"]["ok"] and data["migrated"]["bytes"] > 64 * 1024 and data["identical"] is True

    mdev = run_devmig("lab", "--device", RUNNING)
    assert mdev.code == 0 and "4. devmig prepare on beta: created mdev " in mdev.out
    assert "for Nova: target_mdevs" in mdev.out and "pci_dev_map_src_dst" not in mdev.out
    data = json.loads(run_devmig("lab", "--device", RUNNING, "-j").out)
    assert data["prepared"]["kind"] == "mdev" and list(data["prepared"]["mapping"]) == ["target_mdevs"]
    assert data["identical"] is True and data["destination"] == "beta"


def _lab(path: Path, *destinations: dict[str, object]) -> Path:
    """A lab file: `src` runs a vGPU of aggregator 2 (2 GiB twice over), then the destinations."""
    source = {
        "name": "src",
        "gpus": [
            {
                "address": "0000:00:02.0",
                "devices": [{"uuid": RUNNING, "type": "simgpu-2G", "params": {"aggregator": 2}}],
            }
        ],
    }
    path.write_text(json.dumps({"name": "aggregated", "hosts": [source, *destinations]}))
    return path


#: one free simgpu-2G and an identical driver, so it ranks first; but its driver refuses aggregator=2 (ENOSPC: its
#: 2 GiB pool cannot give 4 GiB), which neither available_instances nor the capability document tells beforehand
TIGHT: dict[str, object] = {"name": "tight", "gpus": [{"address": "0000:00:02.0", "memory_mb": 2048}]}
ROOMY: dict[str, object] = {"name": "roomy", "gpus": [{"address": "0000:00:02.0", "release": "1.3.0"}]}


def test_lab_tries_the_next_host_when_the_best_refuses(tmp_path: Path) -> None:
    lab = _lab(tmp_path / "lab.json", TIGHT, ROOMY)
    result = run_devmig("lab", "--lab", str(lab))
    assert result.code == 0, result.out + result.err
    out = result.out
    assert "3. Best destination: tight (simgpu-2G, identical, 1 free)." in out
    assert "   tight refused the prepare: no capacity on sim:aggregated/tight" in out
    assert "the driver refused aggregator=2" in out
    assert "   Next: roomy (simgpu-2G, compatible, 4 free)." in out
    assert "4. devmig prepare on roomy: created mdev " in out and "byte for byte." in out
    data = json.loads(run_devmig("lab", "--lab", str(lab), "-j").out)
    assert data["best"] == "tight" and data["destination"] == "roomy"
    assert [r["host"] for r in data["refused"]] == ["tight"] and "aggregator=2" in data["refused"][0]["reason"]
    assert data["identical"] is True

    alone = run_devmig("lab", "--lab", str(_lab(tmp_path / "tight.json", TIGHT)))
    assert alone.code == 1 and alone.err == ""
    assert "tight refused the prepare" in alone.out and "   No host accepted the prepare." in alone.out
    assert "4. devmig prepare" not in alone.out


def test_try_lines_name_the_given_lab(tmp_path: Path) -> None:
    lab = _lab(tmp_path / "lab.json", ROOMY)
    out = run_devmig("lab", "--lab", str(lab)).out
    assert f"Try: devmig list --host sim:{lab}/src\n" in out
    assert f"  devmig describe --host sim:{lab}/src {RUNNING} | devmig plan - --host sim:{lab}/roomy" in out
    assert "sim:alpha" not in out
    # the commands it suggests work as printed
    listed = json.loads(run_devmig("list", "-j", "--host", f"sim:{lab}/src").out)["devices"]
    assert RUNNING in {d["uuid"] for d in listed if d["kind"] == "mdev"}
