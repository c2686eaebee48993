"""The host tools the lab needs at a minimum version (QEMU, iproute2): checked with dpkg alone on a warm `prepare()`,
installed from the suite that has them (`suites.choose_release`) when they are older or missing.

The guest runs the host's own root, so the QEMU and iproute2 installed here are also the ones inside the guest.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path

from tests.kernel.lab.debversion import at_least
from tests.kernel.lab.errors import LabUnavailable
from tests.kernel.lab.packages import Apt, installed_versions, parse_apt_policy, with_fresh_lists
from tests.kernel.lab.suites import (
    LAB_NEEDS,
    Need,
    choose_release,
    codename,
    enable_backports,
    parse_apt_offers,
    parse_os_release,
)


def unmet(needs: Sequence[Need], installed: Mapping[str, str]) -> list[Need]:
    return [need for need in needs if not at_least(installed.get(need.package), need.minimum)]


def tools_ready(needs: Sequence[Need] = LAB_NEEDS) -> bool:
    """Whether every need is installed at its minimum: one dpkg-query, no apt."""
    return not unmet(needs, installed_versions([need.package for need in needs]))


def _plan(apt: Apt, needs: Sequence[Need], release: str) -> dict[Need, str | None]:
    text = apt.policy_text([need.package for need in needs])
    candidates, offers = parse_apt_policy(text), parse_apt_offers(text)
    return {
        need: choose_release(need, candidates.get(need.package, (None, None))[1], offers.get(need.package, []), release)
        for need in needs
    }


def _describe(need: Need, installed: Mapping[str, str]) -> str:
    have = installed.get(need.package)
    return f"{need.package} {have if have else '(not installed)'}, {need.minimum} or later needed for {need.why}"


def ensure_tools(apt: Apt, needs: Sequence[Need] = LAB_NEEDS, *, etc: Path = Path("/etc")) -> None:
    """`install_tools`, run again after one `apt-get update` if it failed on stale package lists."""
    with_fresh_lists(apt, lambda: install_tools(apt, needs, etc=etc))


def install_tools(apt: Apt, needs: Sequence[Need], *, etc: Path) -> None:
    """Install each need that is older than its minimum, from the suite that has it.

    When apt offers a required one nowhere, the release's backports suite is added (reusing the mirror of the
    release's own entry, `suites.enable_backports`) and the lists refreshed once. A required need that still cannot
    be had raises LabUnavailable; an optional one is logged and left as it is (the tests adapt to it).
    """
    installed = apt.versions([need.package for need in needs])
    missing = unmet(needs, installed)
    if not missing:
        return
    root = os.geteuid() == 0
    for need in missing:
        if need.required and not root:
            raise LabUnavailable(f"not root: cannot install {_describe(need, installed)}")
    if not root:
        for need in missing:
            apt.log(f"not root: leaving {_describe(need, installed)}")
        return
    try:
        release = codename(parse_os_release((etc / "os-release").read_text()))
    except OSError as exc:
        raise LabUnavailable(f"cannot read {etc / 'os-release'}: {exc.strerror}") from exc
    plan = _plan(apt, missing, release)
    if any(need.required and plan[need] is None for need in missing):
        written = enable_backports(etc, release)
        if written is not None:
            apt.log(f"added {release}-backports to the apt sources: {written}")
        apt.update(force=written is not None)
        plan = _plan(apt, missing, release)
    groups: dict[str, list[str]] = {}
    for need in missing:
        suite = plan[need]
        if suite is None:
            where = f"in {release}'s suites, {release}-backports included"
            if need.required:
                raise LabUnavailable(f"apt offers no {need.package} {need.minimum} or later {where} ({need.why})")
            apt.log(f"leaving {_describe(need, installed)}: apt offers none {where}")
            continue
        groups.setdefault(suite, []).append(need.package)
    for suite, packages in groups.items():
        apt.install(packages, release=suite)
    still = unmet([need for need in missing if plan[need] is not None], apt.versions([n.package for n in missing]))
    if still:
        raise LabUnavailable(f"after apt-get install: {_describe(still[0], apt.versions([still[0].package]))}")
