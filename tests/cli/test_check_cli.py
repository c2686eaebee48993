"""`devmig check`, `baseline` and `schema` as whole processes: output, exit codes, and errors on bad input."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.builders import cap_doc, desc_doc
from tests.cli.conftest import run_devmig
from tests.paths import EXAMPLES, SCHEMAS

CHECKS: list[dict[str, Any]] = json.loads((EXAMPLES / "checks.json").read_text())


@pytest.mark.parametrize("case", CHECKS, ids=lambda c: f"{Path(c['source']).stem}->{Path(c['destination']).stem}")
def test_examples_give_the_expected_verdict(case: dict[str, Any]) -> None:
    src, dst = f"examples/{case['source']}", f"examples/{case['destination']}"
    result = run_devmig("check", "-j", src, dst)
    verdict = json.loads(result.out)
    assert verdict["level"] == case["level"]
    assert sorted(f["code"] for f in verdict["findings"]) == sorted(case["codes"])
    assert result.code == (0 if case["level"] != "incompatible" else 1)
    text = run_devmig("check", src, dst)
    assert text.code == result.code
    assert f"verdict:     {case['level']}" in text.out
    for code in case["codes"]:
        assert code in text.out


def test_text_output_of_an_incompatible_pair() -> None:
    result = run_devmig("check", "examples/gvt-g/vm-ppgtt.descriptor.json", "examples/gvt-g/host-b.capability.json")
    assert result.code == 1
    assert result.out.splitlines() == [
        "source:      vfio-pci i915-GVTg_V5_4 model intel.com/gvt-g/kbl version 1.2.0",
        "destination: vfio-pci i915-GVTg_V5_4 version 1.3.0",
        "verdict:     incompatible",
        "  warning  minor-newer              software_version: the destination 1.3.0 is newer than the source 1.2.0",
        "  error    param-value-not-allowed  params.pv_mode: parameter pv_mode='ppgtt' is not allowed at the "
        "destination (allowed: none, context)",
    ]


def test_plan_is_printed_when_compatible_and_json_options_work_before_and_after() -> None:
    args = ["examples/my-nic/vm-on-old-host.descriptor.json", "examples/my-nic/host-new.capability.json"]
    text = run_devmig("check", *args)
    assert "plan:        new-feature=false num-resources=64" in text.out
    before, after = run_devmig("-j", "check", *args), run_devmig("check", *args, "-j")
    assert before.out == after.out and json.loads(before.out)["plan"] == {
        "new-feature": False,
        "num-resources": 64,
    }
    pretty = run_devmig("-p", "check", *args)
    assert pretty.out.startswith("{\n  ") and json.loads(pretty.out) == json.loads(before.out)


def test_stdin_input() -> None:
    dest = (EXAMPLES / "gvt-g/host-a.capability.json").read_text()
    result = run_devmig("check", "examples/gvt-g/vm-ppgtt.descriptor.json", "-", stdin=dest)
    assert result.code == 0 and "identical" in result.out
    assert run_devmig("check", "-", "-", stdin=dest).code == 2


GARBAGE: list[tuple[str, str]] = [
    ('{"device_api": "vfio-pci", "type": "x", ', "not valid JSON at line 1"),
    (json.dumps(desc_doc(params={"num-resources": [64]})), '$.params["num-resources"]: expected a bool'),
    (json.dumps(desc_doc(device_api="vfio-gpu")), "$.device_api: expected one of vfio-pci"),
    (json.dumps(desc_doc(software_version="1.x")), "$.software_version: expected a version"),
    (json.dumps(desc_doc(software_version=[1, 2, 3])), "$.software_version: expected a version string"),
    ("[]", "$: input should be a valid dictionary"),
    ("\x00\x01", "not valid JSON"),
]


@pytest.mark.parametrize(("text", "message"), GARBAGE)
def test_garbage_exits_2_with_one_line(tmp_path: Path, text: str, message: str) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text(text)
    result = run_devmig("check", str(bad), "examples/my-nic/host-new.capability.json")
    assert result.code == 2
    assert result.out == ""
    assert result.err.count("\n") == 1, result.err
    assert result.err.startswith(f"devmig: error: {bad}: ") and message in result.err
    assert "Traceback" not in result.err


def test_bad_destination_and_missing_file(tmp_path: Path) -> None:
    bad = tmp_path / "cap.json"
    bad.write_text(
        json.dumps(
            cap_doc(models={"a/b": {"params": {"p": {"type": "int", "init_value": 1, "allowed_values": ["9-3"]}}}})
        )
    )
    result = run_devmig("check", "examples/my-nic/vm-new-feature.descriptor.json", str(bad))
    assert result.code == 2 and "$.models[\"a/b\"].params.p: range '9-3' is empty" in result.err
    missing = run_devmig("check", str(tmp_path / "nope.json"), str(bad))
    assert missing.code == 2 and "nope.json: cannot read: No such file or directory" in missing.err


def test_debug_shows_the_traceback(tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text("{")
    result = run_devmig("--debug", "check", str(bad), str(bad))
    assert result.code != 0 and "Traceback" in result.err


def test_usage_errors_exit_2() -> None:
    assert run_devmig("check", "only-one.json").code == 2
    assert run_devmig("frobnicate").code == 2
    assert run_devmig("schema", "nonsense").code == 2


def test_baseline_of_the_gvt_hosts() -> None:
    hosts = [f"examples/gvt-g/host-{h}.capability.json" for h in "abc"]
    result = run_devmig("baseline", "-j", *hosts)
    assert result.code == 0
    data = json.loads(result.out)
    assert data["usable"] and data["software_version"] == "1.2.0"
    params = data["models"]["intel.com/gvt-g/kbl"]["params"]
    assert params["aggregator"]["allowed_values"] == ["1-2", 4]
    assert params["pv_mode"]["allowed_values"] == ["context", "none"]
    narrowed = {c["field"].rsplit(".", 1)[-1]: c["excluded_by"] for c in data["conflicts"]}
    assert narrowed == {"aggregator": [hosts[2]], "pv_mode": [hosts[1]]}
    text = run_devmig("baseline", *hosts)
    assert "software_version: 1.2.0 (a device must be 1.x with minor at most 2)" in text.out


def test_baseline_that_is_not_usable_exits_1() -> None:
    result = run_devmig("baseline", "examples/gvt-g/host-a.capability.json", "examples/ccw/io.capability.json")
    assert result.code == 1 and "NOT usable" in result.out and "device-api-mismatch" in result.out


def test_schema_command_prints_the_published_files() -> None:
    for name in ("capability", "descriptor", "verdict", "baseline", "preflight"):
        result = run_devmig("schema", name)
        assert result.code == 0 and result.out == (SCHEMAS / f"{name}.schema.json").read_text()


def test_help_and_version_need_no_documents() -> None:
    assert "check" in run_devmig("--help").out
    assert run_devmig("--version").out.startswith("devmig, version ")
    assert "Exit 0 when compatible" in " ".join(run_devmig("check", "--help").out.split())


def test_commands_run_in_process_one_after_another(capsys: pytest.CaptureFixture[str]) -> None:
    """Nova or a test harness may call main() many times in one process: a command module must not shadow a
    builtin the CLI uses (cli/list.py once replaced `list` in the package)."""
    from devmig.cli import main

    for _ in range(2):
        assert main(["list", "--sysfs-root", str(EXAMPLES)]) == 0
        assert main(["types", "-j", "--sysfs-root", str(EXAMPLES)]) == 0
        assert main(["schema", "verdict"]) == 0
    capsys.readouterr()
