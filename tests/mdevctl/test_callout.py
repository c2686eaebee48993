"""devmig's mdevctl callout asked as mdevctl asks it (its argv, the device JSON on stdin), in-process and through the
script `install-callout` writes: judged definitions, live attributes, "not mine" (2) for everything else, and a
request it cannot read refused with one line."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from devmig.cli import main
from devmig.host.profile import load_profiles
from devmig.host.sysfs import SysfsRoot
from devmig.mdevctl.callout import NOT_HANDLED, OK, REFUSED, Answer, answer
from devmig.mdevctl.install import MARKER, callout_command, install, script, uninstall
from devmig.testing.sysfs_tree import SysfsTree
from tests.builders import MODEL, cap_doc
from tests.mdevctl.hosts import GPU, NIC, NIC_TYPE, RUNNING, UNKNOWN_TYPE, argv, callout_host, config


@pytest.fixture
def tree(tmp_path: Path) -> SysfsTree:
    return callout_host(tmp_path / "host")


def ask(tree: SysfsTree, args: list[str], stdin: Any = None) -> Answer:
    def read() -> bytes:
        if stdin is None:
            raise AssertionError("the callout read stdin for an event that carries none")
        return stdin if isinstance(stdin, bytes) else json.dumps(stdin).encode()

    return answer(args, read, lambda: SysfsRoot(tree.root), load_profiles)


# -- pre define, modify, start ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("action", ["define", "modify", "start"])
def test_allowed_migration_attributes_are_accepted(tree: SysfsTree, action: str) -> None:
    attrs = (("migration/num-resources", "16"), ("migration/mode", "safe"), ("migration/new-feature", "Y"))
    result = ask(tree, argv("pre", action, NIC_TYPE, NIC), config(NIC_TYPE, *attrs))
    assert result == Answer(OK)


@pytest.mark.parametrize("action", ["define", "modify", "start"])
def test_every_refused_attribute_is_a_reason_on_stderr(tree: SysfsTree, action: str) -> None:
    attrs = (
        ("migration/num-resources", "65"),
        ("vendor_knob", "anything"),  # not devmig's to judge
        ("migration/mode", "turbo"),
        ("migration/colour", "red"),
        ("migration/new-feature", "maybe"),
    )
    result = ask(tree, argv("pre", action, NIC_TYPE, NIC), config(NIC_TYPE, *attrs))
    assert result.code == REFUSED and not result.stdout
    first, *reasons = result.stderr.splitlines()
    assert first == f"mdev 5b0c7e3a-2d4f-4e8a-b1c9-abcdef012345 (type {NIC_TYPE} on {NIC}): {action} refused by " + (
        "devmig, the type does not take these attributes:"
    )
    assert [r.rsplit(" [", 1)[1] for r in reasons] == [
        "param-value-not-allowed]",
        "param-value-not-allowed]",
        "param-unknown]",
        "param-type-mismatch]",
    ]
    assert "num-resources=65 is not allowed for type my-nic-vf (allowed: 16-64)" in reasons[0]
    assert "mode='turbo' is not allowed for type my-nic-vf (allowed: fast, safe)" in reasons[1]
    assert "has no parameter 'colour' (its parameters: new-feature, num-resources, mode)" in reasons[2]
    assert "expected a boolean" in reasons[3]


def test_a_profile_type_has_no_migration_attributes_to_write(tree: SysfsTree) -> None:
    result = ask(tree, argv("pre", "define", "mtty-2", "mtty"), config("mtty-2", ("migration/nr_ports", "2")))
    assert result.code == REFUSED
    assert "the driver of type mtty-2 has no migration/ attributes" in result.stderr
    assert "where nr_ports is 2" in result.stderr and "[param-not-writable]" in result.stderr


@pytest.mark.parametrize(
    ("mdev_type", "parent"),
    [
        (UNKNOWN_TYPE, GPU),  # no driver interface, no profile: devmig cannot describe it
        ("my-nic-vf-big", NIC),  # not a type of this parent
        (NIC_TYPE, "0000:99:00.0"),  # not a parent on this host
    ],
)
def test_a_type_devmig_does_not_know_is_not_handled(tree: SysfsTree, mdev_type: str, parent: str) -> None:
    result = ask(tree, argv("pre", "define", mdev_type, parent), config(mdev_type, ("migration/mode", "turbo")))
    assert result == Answer(NOT_HANDLED)


def test_a_definition_without_migration_attributes_is_left_to_other_scripts(tree: SysfsTree) -> None:
    result = ask(tree, argv("pre", "start", NIC_TYPE, NIC), config(NIC_TYPE, ("vendor_knob", "1")))
    assert result == Answer(NOT_HANDLED)


def test_a_type_whose_declaration_is_broken_is_refused_with_the_file_named(tree: SysfsTree) -> None:
    rel = f"sys/devices/pci0000:05/{NIC}/mdev_supported_types/{NIC_TYPE}/migration_info.json"
    tree.write(rel, json.dumps(cap_doc(type="other", models={MODEL: {}})))
    result = ask(tree, argv("pre", "define", NIC_TYPE, NIC), config(NIC_TYPE, ("migration/mode", "fast")))
    assert result.code == REFUSED and len(result.stderr.splitlines()) == 1
    assert "declares vfio-pci type other, but sysfs shows vfio-pci type my-nic-vf" in result.stderr


# -- get attributes ---------------------------------------------------------------------------------------------------


def test_get_attributes_gives_the_running_device_s_live_values(tree: SysfsTree) -> None:
    result = ask(tree, argv("get", "attributes", NIC_TYPE, NIC, RUNNING))
    assert result.code == OK and not result.stderr
    assert json.loads(result.stdout) == [
        {"migration/new-feature": "0"},
        {"migration/num-resources": "32"},
        {"migration/mode": "safe"},
    ]
    # live: a value changed in sysfs is what the next answer gives
    tree.write(f"sys/devices/pci0000:05/{NIC}/{RUNNING}/migration/num-resources", "48")
    assert {"migration/num-resources": "48"} in json.loads(
        ask(tree, argv("get", "attributes", NIC_TYPE, NIC, RUNNING)).stdout
    )


def test_get_attributes_of_a_device_that_is_not_running_is_an_error(tree: SysfsTree) -> None:
    result = ask(tree, argv("get", "attributes", NIC_TYPE, NIC))
    assert result.code == REFUSED and "not running" in result.stderr and len(result.stderr.splitlines()) == 1


@pytest.mark.parametrize(("mdev_type", "parent"), [("mtty-2", "mtty"), (UNKNOWN_TYPE, GPU)])
def test_get_attributes_of_a_type_without_migration_attributes_is_not_handled(
    tree: SysfsTree, mdev_type: str, parent: str
) -> None:
    assert ask(tree, argv("get", "attributes", mdev_type, parent, RUNNING)) == Answer(NOT_HANDLED)


# -- everything else ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("event", "action"),
    [
        ("post", "define"),
        ("post", "start"),
        ("pre", "stop"),
        ("pre", "undefine"),
        ("notify", "define"),
        ("get", "capabilities"),
        ("live", "modify"),
        ("pre", "some-future-action"),
    ],
)
def test_other_events_and_actions_are_not_handled(tree: SysfsTree, event: str, action: str) -> None:
    assert ask(tree, argv(event, action, NIC_TYPE, NIC)) == Answer(NOT_HANDLED)


@pytest.mark.parametrize(
    ("args", "stdin", "message"),
    [
        (argv("pre", "define", NIC_TYPE, NIC), b"{", "stdin: not JSON"),
        (argv("pre", "define", NIC_TYPE, NIC), b"", "stdin: empty"),
        (argv("pre", "define", NIC_TYPE, NIC), b"\xff", "stdin: not JSON"),
        (argv("pre", "define", NIC_TYPE, NIC), [1], "stdin: a JSON list"),
        (argv("pre", "define", NIC_TYPE, NIC), {"mdev_type": NIC_TYPE, "attrs": {}}, "attrs is a JSON dict"),
        (argv("pre", "define", NIC_TYPE, NIC), {"attrs": [{"a": "1", "b": "2"}]}, "attrs[0] is not an object of one"),
        (argv("pre", "define", NIC_TYPE, NIC), {"attrs": [{"migration/mode": 1}]}, "its value is not a string"),
        (argv("pre", "define", NIC_TYPE, NIC)[:-2], {}, "missing -p"),
        (["-x", "1", *argv("pre", "define", NIC_TYPE, NIC)], {}, "unexpected argument '-x'"),
        ([*argv("pre", "define", NIC_TYPE, NIC), "-t", NIC_TYPE], {}, "-t given twice"),
        (argv("pre", "define", NIC_TYPE, "../../etc"), {}, "parent '../../etc': expected a name"),
        ([*argv("pre", "define", NIC_TYPE, NIC)[:-1]], {}, "-p needs a value"),
    ],
)
def test_a_request_devmig_cannot_read_is_refused_with_one_line(
    tree: SysfsTree, args: list[str], stdin: Any, message: str
) -> None:
    result = ask(tree, args, stdin)
    assert result.code == REFUSED and not result.stdout
    assert result.stderr.startswith("devmig mdevctl callout: ") and result.stderr.count("\n") == 1
    assert message in result.stderr


# -- the installed script -----------------------------------------------------------------------------------------


def run_script(path: Path, args: list[str], stdin: Any, root: Path | None = None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "DEVMIG_SYSFS_ROOT"}
    if root is not None:
        env["DEVMIG_SYSFS_ROOT"] = str(root)
    data = stdin if isinstance(stdin, str) else json.dumps(stdin) if stdin is not None else ""
    return subprocess.run([str(path), *args], input=data, capture_output=True, text=True, env=env, timeout=60)


def test_the_script_filters_events_in_shell_and_reads_their_json(tmp_path: Path) -> None:
    # a command that fails loudly: the script must not reach it for an event devmig does not answer
    path = tmp_path / "callouts" / "devmig"
    path.parent.mkdir()
    path.write_text(script(["/bin/sh", "-c", 'echo "devmig ran: $*" >&2; exit 1', "devmig"]))
    path.chmod(0o755)
    big = {"mdev_type": NIC_TYPE, "start": "auto", "attrs": [{f"a{i}": "x" * 100} for i in range(2000)]}
    for event, action in [("post", "define"), ("pre", "stop"), ("get", "capabilities"), ("notify", "start")]:
        done = run_script(path, argv(event, action, NIC_TYPE, NIC), big)
        assert (done.returncode, done.stderr) == (NOT_HANDLED, "")
    for event, action in [("pre", "define"), ("pre", "modify"), ("pre", "start"), ("get", "attributes")]:
        done = run_script(path, argv(event, action, NIC_TYPE, NIC), {})
        assert done.returncode == 1 and done.stderr.startswith("devmig ran: -- -t my-nic-vf -e " + event)
    # arguments not in mdevctl's order go to devmig, which says what is wrong
    done = run_script(path, ["--bogus"], {})
    assert done.returncode == 1 and "devmig ran: -- --bogus" in done.stderr


def test_the_installed_script_runs_this_devmig_as_mdevctl_runs_it(tree: SysfsTree, tmp_path: Path) -> None:
    path = install(callout_command(profiles_dir=None), callouts_dir=tmp_path / "callouts")
    assert path.stat().st_mode & 0o777 == 0o755 and MARKER in path.read_text()
    refused = run_script(
        path, argv("pre", "define", NIC_TYPE, NIC), config(NIC_TYPE, ("migration/mode", "x")), tree.root
    )
    assert refused.returncode == REFUSED and "[param-value-not-allowed]" in refused.stderr
    live = run_script(path, argv("get", "attributes", NIC_TYPE, NIC, RUNNING), None, tree.root)
    assert live.returncode == OK and json.loads(live.stdout)[2] == {"migration/mode": "safe"}
    bad = run_script(path, argv("pre", "start", NIC_TYPE, NIC), "{nope", tree.root)
    assert bad.returncode == REFUSED and bad.stderr.count("\n") == 1 and "Traceback" not in bad.stderr


def test_install_and_uninstall_touch_only_devmig_s_script(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    callouts = tmp_path / "callouts"
    assert main(["mdevctl", "install-callout", "--callouts-dir", str(callouts), "-j"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["installed"] == str(callouts / "devmig") and shown["command"][-2:] == ["mdevctl", "callout"]
    assert main(["mdevctl", "install-callout", "--callouts-dir", str(callouts)]) == 0  # replacing its own
    other = callouts / "ap-check"
    other.write_text("#!/bin/sh\nexit 2\n")
    assert main(["mdevctl", "install-callout", "--callouts-dir", str(callouts), "--name", "ap-check"]) == 2
    assert main(["mdevctl", "uninstall-callout", "--callouts-dir", str(callouts), "--name", "ap-check"]) == 2
    assert other.read_text() == "#!/bin/sh\nexit 2\n"
    assert main(["mdevctl", "install-callout", "--callouts-dir", str(callouts), "--name", ".hidden"]) == 2
    assert "expected a file name" in capsys.readouterr().err
    assert main(["mdevctl", "uninstall-callout", "--callouts-dir", str(callouts)]) == 0
    assert not (callouts / "devmig").exists()
    assert main(["mdevctl", "uninstall-callout", "--callouts-dir", str(callouts)]) == 0
    assert "nothing to remove" in capsys.readouterr().out
    assert uninstall(callouts_dir=callouts) is None


def test_the_cli_routes_the_callout_without_click(tree: SysfsTree, capsys: pytest.CaptureFixture[str]) -> None:
    args = argv("get", "attributes", NIC_TYPE, NIC, RUNNING)
    assert main(["mdevctl", "callout", "--sysfs-root", str(tree.root), "--", *args]) == OK
    quick = capsys.readouterr().out
    # the click command (as after a group option) gives the same answer
    assert main(["--debug", "mdevctl", "callout", "--sysfs-root", str(tree.root), *args]) == OK
    assert capsys.readouterr().out == quick and json.loads(quick)[0] == {"migration/new-feature": "0"}


# -- what a callout run loads (not timed: docs/performance.md has the figures) ------------------------------------

PROBE = """
import json, sys
from devmig.cli import main
code = main(sys.argv[1:])
sys.stderr.write(json.dumps(sorted(sys.modules)) + "\\n")
sys.exit(code)
"""


def loaded(tree: SysfsTree, args: list[str], stdin: Any, expect: int) -> set[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("DEVMIG_SYSFS_ROOT", "DEVMIG_HOST")}
    argv = [sys.executable, "-c", PROBE, "mdevctl", "callout", "--sysfs-root", str(tree.root), "--", *args]
    proc = subprocess.run(argv, input=json.dumps(stdin), capture_output=True, text=True, env=env, timeout=60)
    assert proc.returncode == expect, proc.stderr
    return set(json.loads(proc.stderr.splitlines()[-1]))


def test_a_callout_with_nothing_to_judge_loads_neither_click_nor_pydantic(tree: SysfsTree) -> None:
    for event, action in [("pre", "define"), ("post", "define")]:
        names = loaded(tree, argv(event, action, NIC_TYPE, NIC), config(NIC_TYPE, ("vendor_knob", "1")), NOT_HANDLED)
        assert not names & {"click", "pydantic", "devmig.host.profile", "devmig.compat"}


def test_a_declared_type_is_judged_without_the_profiles(tree: SysfsTree) -> None:
    names = loaded(tree, argv("pre", "define", NIC_TYPE, NIC), config(NIC_TYPE, ("migration/mode", "safe")), OK)
    assert "devmig.compat.attributes" in names and not names & {"click", "devmig.host.profile"}
    names = loaded(
        tree, argv("pre", "define", "mtty-1", "mtty"), config("mtty-1", ("migration/nr_ports", "1")), REFUSED
    )
    assert {"devmig.host.profile", "devmig.host.profiles"} <= names  # the shipped profiles, read
