"""`devmig export placement|k8s-labels|query` as whole processes, on the default lab's alpha read directly (--host)
and through a fleet store."""

from __future__ import annotations

import json
import re
from pathlib import Path

from tests.cli.conftest import run_devmig

ALPHA = ("--host", "sim:alpha")
VGPU = "6f1c0a2e-3b4d-4c5e-8f90-a1b2c3d4e5f6"


def test_placement_json_holds_the_api_shapes() -> None:
    result = run_devmig("export", "placement", *ALPHA, "-j")
    assert result.code == 0 and result.err == ""
    doc = json.loads(result.out)
    assert set(doc) == {"resource_classes", "traits", "resource_providers", "hosts"}
    # read directly, not from a store: no sign of life recorded, no generation
    assert doc["hosts"] == [{"name": "alpha", "last_seen": None, "age": None, "generation": None}]
    root, *children = doc["resource_providers"]
    assert root["name"] == "alpha" and root["parent_provider_uuid"] is None
    assert (
        {c["parent_provider_uuid"] for c in children} == {root["uuid"]} == {c["root_provider_uuid"] for c in children}
    )
    names = {c["name"]: c for c in children}
    vgpu = names["alpha/0000:00:02.0/simgpu-2G"]
    ((rc, inventory),) = vgpu["inventories"].items()
    assert re.fullmatch(r"CUSTOM_DEVMIG_TYPEH_SIMGPU_2G_[A-Z2-7]{8}", rc) and inventory["total"] == 3
    assert {
        "CUSTOM_DEVMIG_API_VFIO_PCI",
        "CUSTOM_DEVMIG_ACCEPTS_1__2",
        "CUSTOM_DEVMIG_PARAM_PV_MODE__STR__PPGTT",
    } <= set(vgpu["traits"])
    assert all(re.fullmatch(r"CUSTOM_[A-Z0-9_]+", t) and len(t) <= 255 for t in doc["traits"])
    assert run_devmig("export", "placement", *ALPHA, "-j").out == result.out  # the same UUIDs every time


def test_placement_text_is_a_table() -> None:
    result = run_devmig("export", "placement", *ALPHA)
    lines = result.out.splitlines()
    assert result.code == 0
    assert lines[0].split() == ["PROVIDER", "UUID", "RESOURCE_CLASS", "TOTAL", "TRAITS", "GEN", "LAST", "SEEN"]
    assert lines[1].split()[0] == "alpha" and lines[1].split()[2:] == ["-", "-", "0", "-", "-"]
    assert any(line.startswith("alpha/0000:00:02.0/simgpu-2G ") for line in lines)
    assert lines[-1] == "8 providers, 4 resource classes, 99 traits (-j prints them for the Placement API)"


def test_k8s_labels_as_kubectl_and_json() -> None:
    result = run_devmig("export", "k8s-labels", *ALPHA)
    assert result.code == 0 and result.err == ""
    (line,) = result.out.splitlines()
    assert line.startswith("kubectl label node alpha --overwrite devmig.io/simgpu-1G.accepts.1.0=true ")
    as_json = json.loads(run_devmig("export", "k8s-labels", *ALPHA, "--format", "json").out)
    assert as_json == json.loads(run_devmig("export", "k8s-labels", *ALPHA, "-j").out)
    labels = as_json["alpha"]
    assert line.split()[5:] == [f"{k}={v}" for k, v in labels.items()]
    assert labels["devmig.io/simgpu-2G.param.pv_mode.str.ppgtt"] == "true"
    named = run_devmig("export", "k8s-labels", *ALPHA, "--name", "node-7", "--prefix", "gpu.example.com")
    assert named.out.startswith("kubectl label node node-7 --overwrite gpu.example.com/simgpu-1G.")


def test_query_prints_what_a_scheduler_asks(tmp_path: Path) -> None:
    source = tmp_path / "vgpu.json"
    source.write_text(run_devmig("describe", VGPU, *ALPHA, "-j").out)
    result = run_devmig("export", "query", str(source), "-j")
    assert result.code == 0
    doc = json.loads(result.out)
    assert doc["placement"]["microversion"] == "1.39"
    assert doc["placement"]["query"].startswith("required=CUSTOM_DEVMIG_ACCEPTS_1__2,CUSTOM_DEVMIG_API_VFIO_PCI,")
    affinity = doc["kubernetes"]["affinity"]["nodeAffinity"]
    assert len(affinity["requiredDuringSchedulingIgnoredDuringExecution"]["nodeSelectorTerms"]) == 2
    text = run_devmig("export", "query", str(source)).out
    assert "GET /resource_providers?required=CUSTOM_DEVMIG_ACCEPTS_1__2," in text
    assert "Kubernetes (labels of type simgpu-2G):" in text and "- key: devmig.io/simgpu-2G.api.vfio_pci" in text


def test_the_store_exports_what_it_was_given(tmp_path: Path) -> None:
    store = f"sqlite:///{tmp_path / 'fleet.db'}"
    assert run_devmig("inventory", "publish", *ALPHA, "--store", store).code == 0
    from_store = run_devmig("export", "placement", "--store", store, "-j")
    assert from_store.code == 0
    stored, direct = json.loads(from_store.out), json.loads(run_devmig("export", "placement", *ALPHA, "-j").out)
    (seen,) = stored.pop("hosts")
    direct.pop("hosts")
    assert stored == direct
    assert seen["name"] == "alpha" and seen["generation"] == 1 and 0 <= seen["age"] < 60 and seen["last_seen"] > 0
    text = run_devmig("export", "placement", "--store", store).out.splitlines()
    assert re.fullmatch(r"alpha +[-0-9a-f]{36} +- +- +0 +1 +\d+ s ago", text[1])
    assert text[2].startswith("alpha/") and not text[2].endswith("ago")  # a type's provider: its host's freshness
    labels = run_devmig("export", "k8s-labels", "--store", store, "-j")
    assert json.loads(labels.out) == json.loads(run_devmig("export", "k8s-labels", *ALPHA, "-j").out)
    # kubectl: a comment says how fresh the node's facts are; no label changes with it
    comment, command = run_devmig("export", "k8s-labels", "--store", store).out.splitlines()
    assert re.fullmatch(r"# alpha: generation 1, last seen \d+ s ago", comment)
    assert command.startswith("kubectl label node alpha --overwrite ") and "seen" not in command
    empty = run_devmig("export", "k8s-labels", "--store", str(tmp_path / "empty.db"))
    assert empty.code == 0 and empty.out == "" and "holds no host" in empty.err


def test_usage_errors() -> None:
    both = run_devmig("export", "placement", *ALPHA, "--store", "sqlite:///x.db")
    assert both.code == 2 and "--store and --host exclude each other" in both.err
    assert run_devmig("export", "placement", "--name", "n", "--store", "sqlite:///x.db").code == 2
    bad = run_devmig("export", "k8s-labels", *ALPHA, "--prefix", "Bad_Prefix")
    assert bad.code == 2 and bad.out == ""
    assert bad.err == (
        "devmig: error: label prefix 'Bad_Prefix': expected a DNS subdomain of at most 253 characters "
        "(lower case letters, digits, '-' and '.'), e.g. devmig.io\n"
    )
    missing = run_devmig("export", "query", "/nonexistent.json")
    assert missing.code == 2 and missing.err.startswith("devmig: error: /nonexistent.json: cannot read")
