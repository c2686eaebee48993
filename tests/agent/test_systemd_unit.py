"""The systemd unit shipped with devmig: `systemd-analyze verify` accepts it without a warning (missing: skipped,
with the reason; in CI, failed), and it holds what the agent relies on."""

from __future__ import annotations

import shutil
import subprocess
import sys
from importlib import resources
from pathlib import Path

from devmig.testing.ci import missing_prerequisite

UNIT = resources.files("devmig.agent").joinpath("devmig-agent.service").read_text(encoding="utf-8")


def settings() -> dict[str, str]:
    return {
        key: value
        for key, _, value in (
            line.partition("=") for line in UNIT.splitlines() if "=" in line and not line.startswith("#")
        )
    }


def verify(unit: str, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    tool = shutil.which("systemd-analyze")
    if tool is None:
        missing_prerequisite("systemd-analyze is needed to verify the unit (Debian: apt-get install systemd)")
    path = tmp_path / "devmig-agent.service"
    # verify checks that ExecStart's program exists: this checkout's devmig stands in for /usr/bin/devmig
    devmig = Path(sys.executable).with_name("devmig")
    path.write_text(unit.replace("/usr/bin/devmig", str(devmig)))
    return subprocess.run([tool, "verify", str(path)], capture_output=True, text=True, timeout=120)


def test_systemd_analyze_verifies_the_unit(tmp_path: Path) -> None:
    result = verify(UNIT, tmp_path)
    assert result.returncode == 0 and not result.stderr.strip(), result.stderr


def test_the_verification_can_fail(tmp_path: Path) -> None:
    result = verify(UNIT.replace("Type=notify", "Type=notifyy"), tmp_path)
    assert "Failed to parse service type" in result.stderr


def test_the_unit_holds_what_the_agent_relies_on() -> None:
    unit = settings()
    assert unit["Type"] == "notify" and unit["NotifyAccess"] == "main"
    assert unit["ExecReload"] == "/bin/kill -HUP $MAINPID"
    assert unit["RestartPreventExitStatus"] == "2"  # bad settings: no restart loop
    assert unit["WatchdogSec"]
    assert unit["DynamicUser"] == "yes" and unit["ProtectSystem"] == "strict" and unit["NoNewPrivileges"] == "yes"
    assert set(unit["RestrictAddressFamilies"].split()) == {"AF_UNIX", "AF_NETLINK", "AF_INET", "AF_INET6"}
    assert unit["CapabilityBoundingSet"] == ""
