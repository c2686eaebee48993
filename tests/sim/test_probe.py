"""`devmig vfio probe`: the driver test bench, on the simulator's drivers, on deliberately wrong ones, and its CLI."""

from __future__ import annotations

import errno
import json

import pytest

from devmig.cli import main
from devmig.migrate.device import VfioError
from devmig.migrate.fsm import ERROR, PRE_COPY, PRE_COPY_P2P, RESUMING, RUNNING, RUNNING_P2P, STOP, STOP_COPY
from devmig.migrate.probe import (
    Observed,
    ProbeError,
    compare,
    expect,
    expectations,
    reachable,
    run_probe,
)
from devmig.migrate.uapi import MigState
from devmig.sim.vfio import DeviceState, SimDataFd, SimVfioDevice

KIB = 1024


def sim(flags: int = 7, cls: type[SimVfioDevice] = SimVfioDevice) -> SimVfioDevice:
    device = cls("dev0", DeviceState.create(memory=16 * KIB, seed=5), migration_flags=flags)
    device.open()
    return device


# -- the expectations, from the table alone -------------------------------------------------------------------------


def test_expectations_follow_the_table() -> None:
    back = expect(STOP_COPY, PRE_COPY, 7)
    assert not back.accepted and back.state is STOP_COPY and back.path == () and "EINVAL" in (back.refusal or "")
    assert expect(RUNNING, ERROR, 7).refusal is not None
    assert expect(STOP, PRE_COPY, 7).path == (STOP, RUNNING_P2P, RUNNING, PRE_COPY)
    assert expect(STOP, PRE_COPY, 7).opens_data_fd
    kept = expect(PRE_COPY, STOP_COPY, 7)
    assert kept.path == (PRE_COPY, PRE_COPY_P2P, STOP_COPY) and kept.keeps_session and not kept.opens_data_fd
    assert expect(PRE_COPY, STOP_COPY, 5).path == (PRE_COPY, STOP_COPY)
    same = expect(RESUMING, RESUMING, 1)
    assert same.accepted and same.final_arc is None and not same.opens_data_fd and not same.keeps_session
    assert expect(RUNNING, RUNNING_P2P, 1).refusal is not None  # unsupported without P2P


@pytest.mark.parametrize(("flags", "states"), [(1, 4), (3, 5), (5, 5), (7, 7)])
def test_expectations_ask_every_reachable_state_for_every_state(flags: int, states: int) -> None:
    assert len(reachable(flags)) == states
    requests = expectations(flags)
    assert len(requests) == states * len(MigState)
    assert {(e.cur, e.target) for e in requests} == {(c, t) for c in reachable(flags) for t in MigState}


def test_compare_names_each_difference() -> None:
    expected = expect(RUNNING, STOP, 7)
    fine = Observed(accepted=True, state=STOP)
    assert compare(expected, fine) == []
    wrong = Observed(accepted=True, state=RUNNING_P2P, data_fd=True)
    assert compare(expected, wrong) == [
        "RUNNING -> STOP: the device is in RUNNING_P2P afterwards, expected STOP (the request is accepted)",
        "RUNNING -> STOP: the driver returned a data_fd; expected none "
        "(the final arc RUNNING_P2P -> STOP does not open a session)",
    ]
    refused = Observed(accepted=False, errno=errno.EIO, error="EIO", state=STOP_COPY)
    assert compare(expect(STOP_COPY, PRE_COPY, 7), refused) == [
        "STOP_COPY -> PRE_COPY: the driver refused it with EIO, expected EINVAL"
    ]


# -- the simulator's drivers agree ----------------------------------------------------------------------------------


@pytest.mark.parametrize("flags", [1, 3, 5, 7])
def test_sim_drivers_agree_on_every_arc(flags: int) -> None:
    device = sim(flags)
    report = run_probe(device)
    assert report.agrees, report.disagreements
    assert len(report.arcs) == len(reachable(flags)) * len(MigState)
    assert report.left_state is RUNNING and device.get_state() is RUNNING
    assert report.saved_bytes > 0
    checks = {c.state: c for c in report.states}
    assert set(checks) == set(reachable(flags))
    assert all(c.mig_data_size for c in checks.values())
    assert checks[STOP_COPY].precopy_info == "EINVAL"
    for state in (PRE_COPY, PRE_COPY_P2P):
        if state in checks:
            assert isinstance(checks[state].precopy_info, tuple)
    data = report.to_dict()
    assert data["agrees"] and data["requests"] == data["agreeing"] == len(report.arcs)
    assert json.loads(json.dumps(data)) == data


def test_the_device_state_survives_the_probe() -> None:
    device = sim(7)
    before = device.state.digest()
    run_probe(device)
    assert device.state.digest() == before  # every RESUMING loaded the device's own state


# -- wrong drivers are caught ---------------------------------------------------------------------------------------


class BackToPreCopy(SimVfioDevice):
    """A driver bug: STOP_COPY may go back to pre-copy (it restarts the session instead of refusing)."""

    def set_state(self, target: int) -> SimDataFd | None:
        if self.get_state() is STOP_COPY and target in (PRE_COPY, PRE_COPY_P2P):
            self.reset()
        return super().set_state(target)


class FdWhenStopping(SimVfioDevice):
    """A driver bug: a data_fd comes back from every request for STOP."""

    def set_state(self, target: int) -> SimDataFd | None:
        opened = super().set_state(target)
        return SimDataFd(self) if target == STOP and opened is None else opened


class EioForError(SimVfioDevice):
    """A driver bug: it refuses ERROR as a target with EIO, not EINVAL."""

    def set_state(self, target: int) -> SimDataFd | None:
        if target == ERROR:
            raise VfioError(f"{self.name}: SET MIG_DEVICE_STATE ERROR: I/O error", errno.EIO)
        return super().set_state(target)


def failing(report_arcs: list[tuple[MigState, MigState]]) -> set[tuple[str, str]]:
    return {(cur.name, target.name) for cur, target in report_arcs}


def test_a_driver_accepting_stop_copy_to_pre_copy_is_caught() -> None:
    report = run_probe(sim(7, BackToPreCopy))
    assert not report.agrees
    bad = [a for a in report.arcs if not a.ok]
    assert failing([(a.expected.cur, a.expected.target) for a in bad]) == {
        ("STOP_COPY", "PRE_COPY"),
        ("STOP_COPY", "PRE_COPY_P2P"),
    }
    (arc,) = [a for a in bad if a.expected.target is PRE_COPY]
    assert arc.problems[0] == (
        "STOP_COPY -> PRE_COPY: the driver accepted it; the table refuses it with EINVAL (migration state "
        "STOP_COPY -> PRE_COPY: no path between these states (STOP_COPY cannot go back to pre-copy) (EINVAL))"
    )
    assert "STOP_COPY -> PRE_COPY: the device is in PRE_COPY afterwards, expected STOP_COPY" in arc.problems[1]
    assert report.left_state is RUNNING


def test_a_driver_returning_a_data_fd_on_a_stopping_arc_is_caught() -> None:
    report = run_probe(sim(7, FdWhenStopping))
    bad = {(a.expected.cur, a.expected.target): a.problems for a in report.arcs if not a.ok}
    assert set(bad) == {(cur, STOP) for cur in reachable(7)}
    assert bad[RUNNING, STOP] == [
        "RUNNING -> STOP: the driver returned a data_fd; expected none "
        "(the final arc RUNNING_P2P -> STOP does not open a session)"
    ]
    assert bad[STOP, STOP] == ["STOP -> STOP: the driver returned a data_fd; expected none (no arc was run)"]


def test_a_driver_refusing_with_the_wrong_errno_is_caught() -> None:
    report = run_probe(sim(3, EioForError))
    bad = [a for a in report.arcs if not a.ok]
    assert {a.expected.target for a in bad} == {ERROR}
    assert bad[0].problems == [f"{bad[0].expected.cur.name} -> ERROR: the driver refused it with EIO, expected EINVAL"]


def test_a_device_without_migration_cannot_be_probed() -> None:
    device = SimVfioDevice("plain", migration_flags=0)
    with pytest.raises(ProbeError, match=r"device plain: the driver implements no VFIO migration \(ENOTTY\)"):
        run_probe(device)


def test_a_device_whose_state_cannot_be_saved_stops_the_probe() -> None:
    device = sim(7)
    device.fail_next(STOP, STOP_COPY, errno.EIO)
    with pytest.raises(ProbeError, match=r"device dev0: cannot save its own state \(STOP_COPY\): .*STOP -> STOP_COPY"):
        run_probe(device)
    assert device.get_state() is RUNNING  # reset at the end all the same


def test_an_injected_arc_failure_is_a_disagreement_not_a_crash() -> None:
    device = sim(7)
    run_probe(device)  # the first run consumes nothing; inject after it
    device.fail_next(RUNNING_P2P, PRE_COPY_P2P, errno.EIO)
    report = run_probe(device)
    assert not report.agrees and report.left_state is RUNNING
    assert any("failed" in problem and "RUNNING_P2P -> PRE_COPY_P2P" in problem for problem in report.disagreements)


# -- the command ----------------------------------------------------------------------------------------------------


def devmig(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def test_cli_probe_on_a_lab_host(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = devmig(capsys, "mdev", "create", "0000:00:02.0", "simgpu-1G", "--host", "sim:alpha")
    assert code == 0, err
    code, out, _ = devmig(capsys, "list", "--host", "sim:alpha", "-j")
    running = "6f1c0a2e-3b4d-4c5e-8f90-a1b2c3d4e5f6"
    (uuid,) = [d["uuid"] for d in json.loads(out)["devices"] if d["kind"] == "mdev" and d["uuid"] != running]
    code, out, err = devmig(capsys, "vfio", "probe", uuid, "--host", "sim:alpha")
    assert code == 0, err
    assert "migration:  STOP_COPY|P2P|PRE_COPY (0x7)" in out
    assert "PRE_COPY     EINVAL       ok           ok           kept         fd" in out
    assert "requests:   56, 56 as the table says" in out
    assert out.rstrip().endswith("result:     the driver agrees with the table on every request")
    code, out, err = devmig(capsys, "vfio", "probe", uuid, "--host", "sim:alpha", "-j")
    assert code == 0, err
    data = json.loads(out)
    assert data["agrees"] and data["requests"] == 56 and data["left_state"] == "RUNNING"
    assert data["migration"] == ["STOP_COPY", "P2P", "PRE_COPY"] and data["unsupported_states"] == ["ERROR"]


def test_cli_probe_refuses_a_device_a_vm_uses(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = devmig(capsys, "vfio", "probe", "6f1c0a2e-3b4d-4c5e-8f90-a1b2c3d4e5f6", "--host", "sim:alpha")
    assert code == 1 and out == ""
    assert err.count("\n") == 1 and "open by a VM on sim:alpha" in err


def test_cli_probe_a_device_without_migration_exits_1(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = devmig(capsys, "mdev", "create", "0.0.0313", "vfio_ccw-io", "--host", "sim:eta")
    assert code == 0, err
    uuid = out.strip()
    code, out, err = devmig(capsys, "vfio", "probe", uuid, "--host", "sim:eta")
    assert (code, out) == (1, "")
    assert err == f"devmig: error: device {uuid}: the driver implements no VFIO migration (ENOTTY): nothing to probe\n"


def test_cli_probe_bad_input_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = devmig(capsys, "vfio", "probe", "0000:99:00.0", "--host", "sim:alpha")
    assert code == 2 and "device 0000:99:00.0: not found" in err
    code, _, err = devmig(capsys, "vfio", "probe", "0000:3b:00.3", "--host", "sim:alpha", "--via", "tunnel")
    assert code == 2 and "--via" in err


def test_cli_info_says_how_the_device_was_opened(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = devmig(capsys, "vfio", "info", "0000:3b:00.3", "--host", "sim:alpha", "--via", "cdev")
    assert code == 0, err
    assert "opened via: simulated device" in out
    code, out, _ = devmig(capsys, "vfio", "info", "0000:3b:00.3", "--host", "sim:alpha", "-j")
    assert json.loads(out)["via"] is None
