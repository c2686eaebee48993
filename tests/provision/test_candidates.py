"""`rank_candidates` on the lab's hosts: the expected choices, the expected refusals, every reason kept."""

from __future__ import annotations

import pytest

from devmig.compat import candidate_rank, check
from devmig.errors import DevmigError, IncompatibleError
from devmig.host.profile import load_profiles
from devmig.machine import open_host
from devmig.machine.lab import LabHost
from devmig.model.descriptor import DeviceDescriptor, ModelSpec, TypeCapability
from devmig.model.params import ParamSpec
from devmig.provision import NoCapacityError, rank, rank_candidates
from tests.provision.conftest import GPU, gpu_source, lab_host, vf_source


def test_beta_offers_an_identical_type_and_says_why_not_the_others() -> None:
    result = rank(gpu_source(), open_host("sim:beta"))
    best = result.require()
    assert (best.parent, best.type, best.verdict.level if best.verdict else None) == (GPU, "simgpu-2G", "identical")
    assert best.verdict and best.verdict.plan == {"memory": 2048, "aggregator": 2, "pv_mode": "ppgtt"}
    assert best.rank and best.rank.changes == 2  # aggregator and pv_mode move away from their init values
    rejected = {c.type: c.reasons for c in result.rejected}
    assert set(rejected) == {"simgpu-1G", "simgpu-4G"}
    assert all("param-value-not-allowed: parameter memory=2048" in r[0] for r in rejected.values())


def test_gamma_switches_compression_off() -> None:
    best = rank(gpu_source(), open_host("sim:gamma")).require()
    assert best.verdict and best.verdict.level == "compatible"
    assert best.verdict.plan and best.verdict.plan["compression"] is False


@pytest.mark.parametrize(
    ("host", "error", "reason"),
    [
        ("delta", IncompatibleError, "minor-older"),
        ("epsilon", IncompatibleError, "major-mismatch"),
        ("zeta", NoCapacityError, "simgpu-2G: no free instance"),
        ("eta", IncompatibleError, "device-api-mismatch"),
    ],
)
def test_hosts_that_cannot_take_it_give_every_reason(host: str, error: type[DevmigError], reason: str) -> None:
    result = rank(gpu_source(), open_host(f"sim:{host}"))
    assert result.best is None
    with pytest.raises(error) as info:
        result.require()
    assert reason in str(info.value) and info.value.exit_code == 1
    assert all(c.reasons for c in result.rejected) and len(result.rejected) >= 2


def test_a_vf_plan_prefers_a_bound_vf_and_infers_the_unbound_ones() -> None:
    result = rank(vf_source(), open_host("sim:beta"))
    devices = [(c.device, c.bind, c.inferred_from) for c in result.candidates]
    assert devices[0] == ("0000:3b:00.2", None, None)  # already on the variant driver: no binding change
    assert devices[1:] == [(f"0000:3b:00.{n}", "simnic_vfio_pci", "0000:3b:00.2") for n in (3, 4, 5)]
    assert all(c.verdict and c.verdict.level == "identical" for c in result.candidates)


def test_a_vf_in_use_claimed_or_on_a_host_driver_is_never_offered() -> None:
    alpha = open_host("sim:alpha")  # 3b:00.2 runs in a VM there; 3b:00.3 is bound and free
    result = rank_candidates(vf_source(), alpha, load_profiles("/nonexistent"), claimed={"0000:3b:00.3": "p-1"})
    reasons = {c.device: c.reasons[0] for c in result.rejected}
    assert reasons["0000:3b:00.2"].startswith("open by a VM")
    assert reasons["0000:3b:00.3"] == "claimed by devmig prepare p-1"
    assert [c.device for c in result.candidates] == ["0000:3b:00.4", "0000:3b:00.5"]
    assert isinstance(alpha, LabHost)
    alpha.sim.kernel.pci["0000:3b:00.4"].driver = "simnic"
    alpha.sysfs.add_link("sys/devices/pci0000:3b/0000:3b:00.4/driver", "sys/bus/pci/drivers/simnic")
    result = rank_candidates(vf_source(), alpha, load_profiles("/nonexistent"))
    assert next(c for c in result.rejected if c.device == "0000:3b:00.4").reasons == [
        "bound to the host driver simnic (in use by the host; unbind it to offer it)"
    ]


def test_two_gpus_are_two_candidates_ranked_by_version_then_changes_then_room() -> None:
    host = lab_host(
        [
            {
                "name": "h",
                "gpus": [
                    {"address": "0000:00:02.0", "release": "1.2.3"},
                    {"address": "0000:00:03.0", "release": "1.2.0", "memory_mb": 4096},
                    {"address": "0000:00:04.0", "release": "1.2.0"},
                    {"address": "0000:00:05.0", "release": "1.3.0"},
                ],
            }
        ],
        "h",
    )
    order = [(c.parent, c.type) for c in rank(gpu_source(), host).candidates]
    # same version first (more room first among them), then the closer bugfix, then the newer minor
    assert order == [
        ("0000:00:04.0", "simgpu-2G"),
        ("0000:00:03.0", "simgpu-2G"),
        ("0000:00:02.0", "simgpu-2G"),
        ("0000:00:05.0", "simgpu-2G"),
    ]


def _cap(version: str, free: int, params: dict[str, ParamSpec]) -> TypeCapability:
    return TypeCapability(
        device_api="vfio-pci",
        type="t",
        software_version=version,
        api={"pci_id": "1af4:10f0"},
        models={"x.org/m": ModelSpec(params=params)},
        available_instances=free,
    )


def test_rank_orders_by_the_issue_s_rules() -> None:
    source = DeviceDescriptor(
        device_api="vfio-pci", type="t", model="x.org/m", software_version="1.2.1", api={"pci_id": "1af4:10f0"}
    )
    knob = {"k": ParamSpec(type="bool", init_value=True, off_value=False)}
    quiet = {"k": ParamSpec(type="bool", init_value=False, off_value=False)}

    def rank(cap: TypeCapability) -> object:
        return candidate_rank(source, cap, check(source, cap))

    identical, newer_minor = _cap("1.2.1", 1, quiet), _cap("1.3.0", 9, quiet)
    fewer_changes, more_changes = _cap("1.2.4", 1, quiet), _cap("1.2.4", 9, knob)
    close, far = _cap("1.2.2", 1, quiet), _cap("1.2.9", 9, quiet)
    full = _cap("1.2.1", 0, quiet)
    assert rank(identical) < rank(newer_minor)  # type: ignore[operator]
    assert rank(fewer_changes) < rank(more_changes)  # type: ignore[operator]  # k is switched off: one change
    assert rank(close) < rank(far)  # type: ignore[operator]
    assert rank(_cap("1.2.2", 9, quiet)) < rank(close)  # type: ignore[operator]  # then more room
    assert rank(newer_minor) < rank(full)  # type: ignore[operator]  # no room is last, identical or not
