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
