"""`devmig plan | prepare | release | recover` as whole processes on lab hosts, one command after another as an
operator or Nova would run them: a simulated host keeps the changes between commands."""

from __future__ import annotations

import json

from tests.cli.conftest import run_devmig

RUNNING = "6f1c0a2e-3b4d-4c5e-8f90-a1b2c3d4e5f6"
NEW = "11111111-2222-4333-8444-555555555555"


def source() -> str:
    described = run_devmig("describe", RUNNING, "--host", "sim:alpha")
    assert described.code == 0
    return described.out


def test_plan_text_json_and_exit_codes() -> None:
    src = source()
    beta = run_devmig("plan", "-", "--host", "sim:beta", stdin=src)
    assert beta.code == 0, beta.err
    row = "1  0000:00:02.0/simgpu-2G  1.2.0    identical  2        4     memory=2048 aggregator=2 pv_mode=ppgtt"
    assert row in beta.out
    assert "0000:00:02.0/simgpu-1G  param-value-not-allowed" in beta.out
    gamma = json.loads(run_devmig("plan", "-", "--host", "sim:gamma", "-j", stdin=src).out)
    assert gamma["candidates"][0]["plan"]["compression"] is False
    delta = run_devmig("plan", "-", "--host", "sim:delta", stdin=src)
    assert delta.code == 1 and "no device fits." in delta.out and "minor-older" in delta.out
    assert run_devmig("plan", "/nonexistent.json", "--host", "sim:beta").code == 2


def test_prepare_list_release_across_processes() -> None:
    src = source()
    # no --source-id: the descriptor `devmig describe` printed names its mdev, and the mapping uses it
    assert json.loads(src)["address"] == {"kind": "mdev", "id": RUNNING}
    done = run_devmig("prepare", "-", "--host", "sim:beta", "-u", NEW, "--persist", stdin=src)
    assert done.code == 0, done.err
    assert f"prepared on sim:beta: mdev {NEW} (simgpu-2G on 0000:00:02.0)" in done.out
    assert f'{{"target_mdevs": {{"{RUNNING}": "{NEW}"}}}}' in done.out
    # a later process sees the device and its mdevctl definition
    listed = json.loads(run_devmig("list", "--host", "sim:beta", "--format", "mdevctl").out)
    assert listed[0]["0000:00:02.0"][0][NEW]["attrs"][1] == {"migration/aggregator": "2"}
    again = json.loads(run_devmig("prepare", "-", "--host", "sim:beta", "-u", NEW, "-j", stdin=src).out)
    assert again["existing"] is True and again["device"] == NEW
    assert run_devmig("recover", "--host", "sim:beta").out.strip() == "nothing to recover"
    released = run_devmig("release", NEW, "--host", "sim:beta")
    assert released.code == 0 and f"remove mdev {NEW}" in released.out
    assert json.loads(run_devmig("list", "-j", "--host", "sim:beta").out)["devices"][0]["kind"] == "pci"
    unknown = run_devmig("release", NEW, "--host", "sim:beta")
    assert unknown.code == 2 and unknown.err.startswith("devmig: error:") and "Traceback" not in unknown.err


def test_no_capacity_and_nothing_fits_are_exit_1_with_reasons() -> None:
    src = source()
    zeta = run_devmig("prepare", "-", "--host", "sim:zeta", stdin=src)
    assert zeta.code == 1 and "no capacity on sim:zeta" in zeta.err
    epsilon = run_devmig("prepare", "-", "--host", "sim:epsilon", stdin=src)
    assert epsilon.code == 1 and "major-mismatch" in epsilon.err and "pv_mode='ppgtt'" in epsilon.err


def test_lab_reset_forgets_the_changes() -> None:
    src = source()
    assert run_devmig("prepare", "-", "--host", "sim:gamma", "-u", NEW, stdin=src).code == 0
    reset = run_devmig("lab", "--reset", "-j")
    assert reset.code == 0 and "forgot the changes of 1 simulated host(s)" in reset.err
    assert json.loads(run_devmig("list", "-j", "--host", "sim:gamma").out)["devices"] == []
    # the prepare record went with it: the same UUID can be prepared again
    assert run_devmig("prepare", "-", "--host", "sim:gamma", "-u", NEW, "-j", stdin=src).code == 0


def test_lab_prepares_on_the_best_host_and_releases() -> None:
    out = run_devmig("lab").out
    assert "4. devmig prepare on beta: created mdev" in out
    assert "wrote memory=2048 aggregator=2 pv_mode=ppgtt, each read back" in out
    assert f'{{"{RUNNING}": "' in out
    data = json.loads(run_devmig("lab", "-j").out)
    assert data["prepared"]["params"] == {"memory": 2048, "aggregator": 2, "pv_mode": "ppgtt"}
