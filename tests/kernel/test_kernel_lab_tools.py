"""The kernel lab's host tools: Debian version order (held to dpkg's own), which suite gives QEMU >= 8.0 and
iproute2 6.15 on each release, adding the release's backports, and what `prepare()` installs. No apt, no boot.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Sequence
from pathlib import Path

import pytest

from tests.kernel.lab import assets as lab_assets
from tests.kernel.lab import tools
from tests.kernel.lab.assets import LabAssets
from tests.kernel.lab.debversion import at_least, compare_versions, split_version
from tests.kernel.lab.errors import LabUnavailable
from tests.kernel.lab.packages import Apt
from tests.kernel.lab.suites import (
    BACKPORTS_FILE,
    IPROUTE2,
    LAB_NEEDS,
    LIBVIRT,
    QEMU,
    Offer,
    Source,
    backports_entry,
    choose_release,
    codename,
    enable_backports,
    parse_apt_offers,
    parse_deb822_sources,
    parse_one_line_sources,
    parse_os_release,
    read_sources,
)

PAIRS = [
    ("1:10.0.2+ds-2+deb13u1~bpo12+1", "1:8.0"),
    ("1:7.2+dfsg-7+deb12u18+b3", "1:8.0"),
    ("1:7.2+dfsg-7+deb12u18+b3", "1:7.2+dfsg-7+deb12u15"),
    ("6.15.0-1~bpo12+1", "6.15"),
    ("6.15.0-1~bpo12+1", "6.15.0-1"),
    ("6.1.0-3", "6.15"),
    ("6.1.0-3", "6.1.0-3"),
    ("1.0~rc1", "1.0"),
    ("1.0~~", "1.0~"),
    ("1.0", "1.0-0"),
    ("1.0-1", "1.0-1+b1"),
    ("2.0a", "2.0+"),
    ("2.0a", "2.0."),
    ("0:1", "1"),
    ("10", "9"),
    ("1.01", "1.1"),
    ("1:1", "2"),
    ("1:1", "2:0"),
    ("1.2-3-4", "1.2-3"),
    ("8.0", "1:7.2"),
]


@pytest.mark.skipif(shutil.which("dpkg") is None, reason="dpkg is the oracle")
@pytest.mark.parametrize(("a", "b"), PAIRS)
def test_debian_versions_sort_as_dpkg_sorts_them(a: str, b: str) -> None:
    def dpkg(op: str) -> bool:
        return subprocess.run(["dpkg", "--compare-versions", a, op, b], check=False).returncode == 0

    expected = -1 if dpkg("lt") else 1 if dpkg("gt") else 0
    assert compare_versions(a, b) == expected
    assert compare_versions(b, a) == -expected


def test_version_parts_and_minimums() -> None:
    assert split_version("1:10.0.2+ds-2+deb13u1~bpo12+1") == (1, "10.0.2+ds", "2+deb13u1~bpo12+1")
    assert split_version("1.2-3-4") == (0, "1.2-3", "4")
    with pytest.raises(ValueError, match="not a Debian package version"):
        split_version("abc def")
    assert at_least("1:10.0.2+ds-2+deb13u1~bpo12+1", QEMU.minimum)
    assert not at_least("1:7.2+dfsg-7+deb12u18+b3", QEMU.minimum)
    assert at_least("6.15.0-1~bpo12+1", IPROUTE2.minimum) and not at_least("6.1.0-3", IPROUTE2.minimum)
    assert not at_least(None, "0")


def test_os_release_codename() -> None:
    text = 'PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"\nVERSION_ID="12"\nVERSION_CODENAME=bookworm\nID=debian\n'
    assert codename(parse_os_release(text)) == "bookworm"
    with pytest.raises(LabUnavailable, match="no VERSION_CODENAME"):
        codename(parse_os_release('ID=debian\nVERSION_CODENAME=""\n'))


DEBIAN_SOURCES = """\
Types: deb
# a snapshot of the archive
URIs: http://mirror.invalid/debian
Suites: bookworm bookworm-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: http://mirror.invalid/debian-security
Suites: bookworm-security
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb-src
URIs: http://mirror.invalid/debian
Suites: bookworm-backports
Components: main

Types: deb
Enabled: no
URIs: http://mirror.invalid/debian
Suites: bookworm-backports
Components: main
"""


def test_deb822_sources_only_enabled_binary_entries() -> None:
    sources = parse_deb822_sources(DEBIAN_SOURCES)
    keyring = "/usr/share/keyrings/debian-archive-keyring.gpg"
    assert sources == [
        Source(("http://mirror.invalid/debian",), ("bookworm", "bookworm-updates"), ("main",), keyring),
        Source(("http://mirror.invalid/debian-security",), ("bookworm-security",), ("main",), keyring),
    ]
    inline = "Types: deb\nURIs: http://m.invalid/d\nSuites: trixie\nSigned-By:\n -----BEGIN PGP\n .\n"
    assert parse_deb822_sources(inline)[0].signed_by is None  # an inline key is not copied


def test_one_line_sources() -> None:
    text = (
        "# deb http://old.invalid/debian buster main\n"
        "deb [arch=amd64 signed-by=/etc/k.gpg] http://mirror.invalid/debian bookworm main contrib\n"
        "deb-src http://mirror.invalid/debian bookworm main\n"
        "deb http://mirror.invalid/debian-security bookworm-security main # security\n"
    )
    assert parse_one_line_sources(text) == [
        Source(("http://mirror.invalid/debian",), ("bookworm",), ("main", "contrib"), "/etc/k.gpg"),
        Source(("http://mirror.invalid/debian-security",), ("bookworm-security",), ("main",), None),
    ]


def test_the_backports_entry_reuses_the_releases_mirror() -> None:
    sources = parse_deb822_sources(DEBIAN_SOURCES)
    assert backports_entry(sources, "bookworm") == (
        "Types: deb\nURIs: http://mirror.invalid/debian\nSuites: bookworm-backports\nComponents: main\n"
        "Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg\n"
    )
    present = [*sources, Source(("http://other.invalid/debian",), ("bookworm-backports",), ("main",), None)]
    assert backports_entry(present, "bookworm") is None
    with pytest.raises(LabUnavailable, match="no apt source for trixie"):
        backports_entry(sources, "trixie")


def write_etc(etc: Path, *, sources: str = DEBIAN_SOURCES, release: str = "bookworm") -> Path:
    (etc / "apt" / "sources.list.d").mkdir(parents=True)
    (etc / "apt" / "sources.list.d" / "debian.sources").write_text(sources)
    (etc / "os-release").write_text(f"ID=debian\nVERSION_CODENAME={release}\n")
    return etc


def test_enable_backports_writes_a_devmig_file_once(tmp_path: Path) -> None:
    etc = write_etc(tmp_path)
    written = enable_backports(etc, "bookworm")
    assert written == etc / "apt" / "sources.list.d" / BACKPORTS_FILE.format(codename="bookworm")
    assert written.name == "devmig-bookworm-backports.sources"
    assert "Suites: bookworm-backports\n" in written.read_text() and written.stat().st_mode & 0o777 == 0o644
    assert (etc / "apt" / "sources.list.d" / "debian.sources").read_text() == DEBIAN_SOURCES  # never edited
    assert enable_backports(etc, "bookworm") is None  # idempotent: the suite is there now
    assert sum("bookworm-backports" in s.suites for s in read_sources(etc)) == 1


def test_enable_backports_from_a_one_line_sources_list(tmp_path: Path) -> None:
    (tmp_path / "apt" / "sources.list.d").mkdir(parents=True)
    (tmp_path / "apt" / "sources.list").write_text("deb http://mirror.invalid/debian bookworm main\n")
    written = enable_backports(tmp_path, "bookworm")
    assert written is not None and "URIs: http://mirror.invalid/debian\n" in written.read_text()
    assert "Signed-By" not in written.read_text()


def policy(package: str, installed: str | None, table: Sequence[tuple[str, str]]) -> str:
    """`apt-cache policy PACKAGE` output; `table`: (version, suite) newest first, the first one the candidate
    unless a backports suite (priority 100)."""
    candidate = next((v for v, suite in table if not suite.endswith("-backports")), None)
    lines = [f"{package}:", f"  Installed: {installed or '(none)'}", f"  Candidate: {candidate or '(none)'}"]
    lines.append("  Version table:")
    for version, suite in table:
        mark = " ***" if version == installed else "    "
        priority = 100 if suite.endswith("-backports") else 500
        lines.append(f"{mark} {version} {priority}")
        lines.append(f"        {priority} http://mirror.invalid/debian {suite}/main amd64 Packages")
        if version == installed:
            lines.append("        100 /var/lib/dpkg/status")
    return "\n".join(lines) + "\n"


QEMU_BPO = "1:10.0.2+ds-2+deb13u1~bpo12+1"
QEMU_72 = "1:7.2+dfsg-7+deb12u18+b3"


def test_apt_offers_and_the_suite_each_need_comes_from() -> None:
    text = policy("qemu-system-x86", QEMU_72, [(QEMU_BPO, "bookworm-backports"), (QEMU_72, "bookworm")])
    text += policy("iproute2", None, [("6.1.0-3", "bookworm")])
    offers = parse_apt_offers(text)
    assert offers["qemu-system-x86"] == [Offer(QEMU_BPO, ("bookworm-backports",)), Offer(QEMU_72, ("bookworm",))]
    assert offers["iproute2"] == [Offer("6.1.0-3", ("bookworm",))]
    assert choose_release(QEMU, QEMU_72, offers["qemu-system-x86"], "bookworm") == "bookworm-backports"
    assert choose_release(IPROUTE2, "6.1.0-3", offers["iproute2"], "bookworm") is None
    # Debian 13: the main suite's candidate is new enough
    assert choose_release(QEMU, "1:10.0.6+ds-0+deb13u2", [Offer("1:10.0.6+ds-0+deb13u2", ("trixie",))], "trixie") == ""
    # an offer only in dpkg's status (installed, no longer in a suite) is no offer
    assert choose_release(QEMU, None, [Offer(QEMU_BPO, ())], "bookworm") is None


class FakeApt(Apt):
    """apt on a Debian `release` machine under `etc`: what each suite offers, and what gets installed."""

    def __init__(self, etc: Path, release: str, installed: dict[str, str], suites: dict[str, dict[str, str]]) -> None:
        self.logged: list[str] = []
        self.log = self.logged.append
        self.updated = False
        self.updates: list[bool] = []
        self.etc = etc
        self.release = release
        self.present = dict(installed)
        self.suites = suites  # {suite: {package: version}}
        self.installs: list[tuple[str, list[str]]] = []

    def update(self, *, force: bool = False) -> None:
        self.updates.append(force)
        self.updated = True

    def versions(self, packages: Sequence[str]) -> dict[str, str]:
        return {p: v for p, v in self.present.items() if p in packages}

    def _visible(self) -> set[str]:
        """The suites apt knows: those in the sources, once `apt-get update` has run after they were added."""
        named = {suite for source in read_sources(self.etc) for suite in source.suites}
        return {suite for suite in self.suites if suite in named and (self.updated or "-backports" not in suite)}

    def policy_text(self, packages: Sequence[str]) -> str:
        visible = self._visible()
        text = ""
        for package in packages:
            table = [(found[package], suite) for suite, found in self.suites.items() if package in found]
            table = [row for row in table if row[1] in visible]
            table.sort(key=lambda row: row[1].endswith("-backports"), reverse=True)
            text += policy(package, self.present.get(package), table)
        return text

    def install(self, packages: Sequence[str], *, release: str = "") -> None:
        self.installs.append((release, list(packages)))
        for package in packages:
            self.present[package] = self.suites[release or self.release][package]


#: the two tools these tests follow through the mechanism (LAB_NEEDS adds libvirt's packages: tested on their own)
TWO = (QEMU, IPROUTE2)
LIBVIRT_BPO = "11.3.0-2~bpo12+1"

BOOKWORM = {
    "bookworm": {"qemu-system-x86": QEMU_72, "iproute2": "6.1.0-3"},
    "bookworm-backports": {"qemu-system-x86": QEMU_BPO, "iproute2": "6.15.0-1~bpo12+1"},
}


@pytest.fixture
def as_root(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(os, "geteuid", lambda: 0)


@pytest.mark.usefixtures("as_root")
def test_on_debian_12_the_tools_come_from_the_backports_the_lab_adds(tmp_path: Path) -> None:
    etc = write_etc(tmp_path)
    apt = FakeApt(etc, "bookworm", {"qemu-system-x86": QEMU_72, "iproute2": "6.1.0-3"}, BOOKWORM)
    tools.ensure_tools(apt, TWO, etc=etc)
    assert (etc / "apt" / "sources.list.d" / "devmig-bookworm-backports.sources").is_file()
    assert apt.updates == [True]
    assert apt.installs == [("bookworm-backports", ["qemu-system-x86", "iproute2"])]
    assert apt.present == {"qemu-system-x86": QEMU_BPO, "iproute2": "6.15.0-1~bpo12+1"}
    # a second run: nothing to do, nothing asked of apt
    apt.updates.clear()
    apt.installs.clear()
    tools.ensure_tools(apt, TWO, etc=etc)
    assert (apt.updates, apt.installs) == ([], [])


@pytest.mark.usefixtures("as_root")
def test_on_debian_13_the_tools_come_from_the_main_suite(tmp_path: Path) -> None:
    etc = write_etc(tmp_path, sources=DEBIAN_SOURCES.replace("bookworm", "trixie"), release="trixie")
    suites = {"trixie": {"qemu-system-x86": "1:10.0.6+ds-0+deb13u2", "iproute2": "6.15.0-1"}}
    apt = FakeApt(etc, "trixie", {}, suites)
    tools.ensure_tools(apt, TWO, etc=etc)
    assert not (etc / "apt" / "sources.list.d" / "devmig-trixie-backports.sources").exists()
    assert apt.installs == [("", ["qemu-system-x86", "iproute2"])] and apt.updates == []


@pytest.mark.usefixtures("as_root")
def test_backports_already_in_the_sources_are_used_not_added_again(tmp_path: Path) -> None:
    etc = write_etc(tmp_path)
    (etc / "apt" / "sources.list.d" / "bookworm-backports.sources").write_text(
        "Types: deb\nURIs: http://mirror.invalid/debian\nSuites: bookworm-backports\nComponents: main\n"
    )
    apt = FakeApt(etc, "bookworm", {"qemu-system-x86": QEMU_72}, BOOKWORM)
    apt.updated = True  # lists already fetched with backports in them
    tools.ensure_tools(apt, TWO, etc=etc)
    assert sorted(p.name for p in (etc / "apt" / "sources.list.d").iterdir()) == [
        "bookworm-backports.sources",
        "debian.sources",
    ]
    assert apt.installs == [("bookworm-backports", ["qemu-system-x86", "iproute2"])] and apt.updates == []


@pytest.mark.usefixtures("as_root")
def test_a_qemu_nowhere_new_enough_makes_the_lab_unavailable(tmp_path: Path) -> None:
    etc = write_etc(tmp_path)
    apt = FakeApt(etc, "bookworm", {"qemu-system-x86": QEMU_72}, {"bookworm": BOOKWORM["bookworm"]})
    with pytest.raises(LabUnavailable) as info:
        tools.ensure_tools(apt, TWO, etc=etc)
    assert str(info.value) == (
        "apt offers no qemu-system-x86 1:8.0 or later in bookworm's suites, bookworm-backports included "
        "(VFIO migration v2 in QEMU (Debian 12's 7.2 has only the removed v1))"
    )
    assert apt.installs == []


@pytest.mark.usefixtures("as_root")
def test_an_iproute2_nowhere_new_enough_is_left_as_it_is(tmp_path: Path) -> None:
    etc = write_etc(tmp_path)
    backports = {"qemu-system-x86": QEMU_BPO}  # no iproute2 in this backports
    apt = FakeApt(etc, "bookworm", {"iproute2": "6.1.0-3"}, {**BOOKWORM, "bookworm-backports": backports})
    tools.ensure_tools(apt, TWO, etc=etc)
    assert apt.installs == [("bookworm-backports", ["qemu-system-x86"])]
    assert apt.present["iproute2"] == "6.1.0-3"
    assert any(line.startswith("leaving iproute2 6.1.0-3, 6.15 or later needed") for line in apt.logged)


def test_not_root_the_lab_says_which_tool_it_cannot_install(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    etc = write_etc(tmp_path)
    apt = FakeApt(etc, "bookworm", {"qemu-system-x86": QEMU_72, "iproute2": "6.1.0-3"}, BOOKWORM)
    with pytest.raises(LabUnavailable, match=r"^not root: cannot install qemu-system-x86 1:7\.2\+dfsg"):
        tools.ensure_tools(apt, TWO, etc=etc)
    apt.present["qemu-system-x86"] = QEMU_BPO  # QEMU fine, iproute2 old: the tests compare with 6.1
    tools.ensure_tools(apt, TWO, etc=etc)
    assert apt.installs == [] and apt.logged == [
        "not root: leaving iproute2 6.1.0-3, 6.15 or later needed for "
        "iproute2's vdpa with `dev set` and device_features"
    ]
    assert not (etc / "apt" / "sources.list.d" / "devmig-bookworm-backports.sources").exists()


def test_a_warm_prepare_with_old_tools_installs_them_and_keeps_the_kernel(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """The kernel's assets are cached: only the tools step runs (no kernel resolution, no build)."""
    assets = LabAssets("6.12.117+deb12-amd64", tmp_path / "vmlinuz", tmp_path / "initramfs", tmp_path)
    ready = [False]
    monkeypatch.setattr(lab_assets, "_cached", lambda cache: assets)
    monkeypatch.setattr(lab_assets, "tools_ready", lambda: ready[0])
    monkeypatch.setattr(lab_assets, "Apt", lambda log: "apt")

    def ensure(apt: object) -> None:
        assert apt == "apt"
        ready[0] = True

    def no_build(*args: object) -> None:
        raise AssertionError("the kernel was resolved and built again")

    monkeypatch.setattr(lab_assets, "ensure_tools", ensure)
    monkeypatch.setattr(lab_assets, "install_and_fetch", no_build)
    assert lab_assets.prepare(tmp_path, log=lambda message: None) == assets
    assert ready == [True]
    assert {need.package for need in LAB_NEEDS} == {
        "qemu-system-x86",
        "iproute2",
        "libvirt-daemon",
        "libvirt-daemon-driver-qemu",
        "libvirt-clients",
    }


@pytest.mark.usefixtures("as_root")
@pytest.mark.parametrize(
    ("release", "suites", "wanted"),
    [
        (
            "bookworm",
            {"bookworm": "9.0.0-4+deb12u2", "bookworm-backports": LIBVIRT_BPO},
            ("bookworm-backports", LIBVIRT_BPO),
        ),
        ("trixie", {"trixie": "11.3.0-3"}, ("", "11.3.0-3")),
    ],
)
def test_libvirt_comes_from_backports_on_debian_12_and_the_main_suite_on_13(
    tmp_path: Path, release: str, suites: dict[str, str], wanted: tuple[str, str]
) -> None:
    """Debian 12's own libvirt 9.0 runs no `release end migrated` hook: the lab's libvirt is 10.5 or later."""
    etc = write_etc(tmp_path, sources=DEBIAN_SOURCES.replace("bookworm", release), release=release)
    packages = [need.package for need in LIBVIRT]
    apt = FakeApt(etc, release, {}, {suite: dict.fromkeys(packages, v) for suite, v in suites.items()})
    tools.ensure_tools(apt, LIBVIRT, etc=etc)
    assert apt.installs == [(wanted[0], packages)]
    assert apt.present == dict.fromkeys(packages, wanted[1])
