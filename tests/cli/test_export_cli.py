"""`devmig export placement|k8s-labels|query` as whole processes, on the default lab's alpha read directly (--host)
and through a fleet store."""

from __future__ import annotations

import json
import re
from pathlib import Path

from tests.cli.conftest import run_devmig
from tests.node_affinity import all_valid, node_matches

ALPHA = ("--host", "sim:alpha")
LAB = ("alpha", "beta", "gamma", "delta", "epsilon", "zeta", "eta")
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
    assert line.startswith("kubectl label node alpha --overwrite devmig.io/simgpu-1G.api.vfio_pci=true ")
    as_json = json.loads(run_devmig("export", "k8s-labels", *ALPHA, "--format", "json").out)
    assert as_json == json.loads(run_devmig("export", "k8s-labels", *ALPHA, "-j").out)
    labels = as_json["alpha"]
    assert line.split()[5:] == [f"{k}={v}" for k, v in labels.items()]
    assert labels["devmig.io/simgpu-2G.param.pv_mode.str.ppgtt"] == "true"
    assert labels["devmig.io/simgpu-2G.minor.1"] == "2" and labels["devmig.io/simgpu-2G.int.memory.max"] == "2048"
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


def test_nfd_feature_file_to_stdout_a_directory_or_a_file(tmp_path: Path) -> None:
    labels = json.loads(run_devmig("export", "k8s-labels", *ALPHA, "-j").out)["alpha"]
    printed = run_devmig("export", "k8s-labels", *ALPHA, "--format", "nfd")
    assert printed.code == 0 and printed.err == ""
    lines = printed.out.splitlines()
    assert lines[0].startswith("# Kubernetes node labels of host alpha, written by devmig")
    assert re.fullmatch(r"# \+expiry-time=\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", lines[2])
    assert lines[3:] == [f"{k}={v}" for k, v in labels.items()]
    never = run_devmig("export", "k8s-labels", *ALPHA, "--format", "nfd", "--expiry", "0").out
    assert "+expiry-time" not in never and never.splitlines()[2:] == lines[3:]
    wrote = run_devmig("export", "k8s-labels", *ALPHA, "--format", "nfd", "--nfd-dir", str(tmp_path))
    assert wrote.code == 0 and wrote.out == f"{tmp_path / 'devmig'}: written (host alpha)\n"
    kept = run_devmig("export", "k8s-labels", *ALPHA, "--format", "nfd", "--nfd-dir", str(tmp_path))
    assert kept.out == f"{tmp_path / 'devmig'}: unchanged, kept (host alpha)\n"
    assert (tmp_path / "devmig").read_text().splitlines()[3:] == lines[3:]
    out = tmp_path / "alpha.features"
    assert run_devmig("export", "k8s-labels", *ALPHA, "--format", "nfd", "-o", str(out)).code == 0
    assert out.read_text().splitlines()[3:] == lines[3:]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["alpha.features", "devmig"]


def test_nfd_refusals(tmp_path: Path) -> None:
    missing = run_devmig("export", "k8s-labels", *ALPHA, "--format", "nfd", "--nfd-dir", str(tmp_path / "no"))
    assert missing.code == 2 and missing.err == f"devmig: error: {tmp_path / 'no'}: no such directory " + (
        "(nfd-worker's features.d: create it first)\n"
    )
    reserved = run_devmig("export", "k8s-labels", *ALPHA, "--format", "nfd", "--prefix", "feature.node.kubernetes.io")
    assert reserved.code == 2 and "Kubernetes reserves kubernetes.io and k8s.io" in reserved.err
    stray = run_devmig("export", "k8s-labels", *ALPHA, "--nfd-dir", str(tmp_path))
    assert stray.code == 2 and "--nfd-dir and -o write the feature file of --format nfd" in stray.err
    store = f"sqlite:///{tmp_path / 'fleet.db'}"
    for name in ("alpha", "beta"):
        assert run_devmig("inventory", "publish", "--host", f"sim:{name}", "--store", store).code == 0
    two = run_devmig("export", "k8s-labels", "--store", store, "--format", "nfd")
    assert two.code == 2 and "--format nfd writes one node's feature file, and 2 hosts were given" in two.err


def test_k8s_affinity_selects_the_lab_nodes_that_can_take_the_vgpu(tmp_path: Path) -> None:
    """The printed affinity against each lab node's printed labels, as the scheduler evaluates it: alpha's vGPU goes
    to alpha, beta, gamma and zeta, not to delta (older driver), epsilon (another major) or eta (s390)."""
    source = tmp_path / "vgpu.json"
    source.write_text(run_devmig("describe", VGPU, *ALPHA, "-j").out)
    result = run_devmig("export", "k8s-affinity", str(source), "--format", "json")
    assert result.code == 0 and result.err == ""
    affinity = json.loads(result.out)
    assert all_valid(affinity) and affinity == json.loads(run_devmig("export", "k8s-affinity", str(source), "-j").out)
    terms = affinity["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]["nodeSelectorTerms"]
    assert len(terms) == 2  # pv_mode ppgtt, or a type taking any pv_mode
    assert {"key": "devmig.io/simgpu-2G.minor.1", "operator": "Gt", "values": ["1"]} in terms[0]["matchExpressions"]
    matched = []
    for node in LAB:
        labels = json.loads(run_devmig("export", "k8s-labels", "--host", f"sim:{node}", "-j").out)[node]
        if node_matches(affinity, labels):
            matched.append(node)
    assert matched == ["alpha", "beta", "gamma", "zeta"]
    text = run_devmig(
        "export", "k8s-affinity", "-", "--type", "simgpu-2G", "--type", "simgpu-4G", stdin=source.read_text()
    )
    assert text.code == 0 and text.out.startswith("nodeAffinity:\n  requiredDuringSchedulingIgnoredDuringExecution:\n")
    assert "- key: devmig.io/simgpu-4G.minor.1\n        operator: Gt\n        values:\n        - '1'\n" in text.out
    query = json.loads(run_devmig("export", "query", str(source), "-j").out)
    assert query["kubernetes"] == {"affinity": affinity}  # one builder for both
