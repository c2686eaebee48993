"""Which apt suite gives the lab a tool at the version it needs, decided at run time: the release's own suite where
it is new enough (Debian 13 and later), else the release's backports (Debian 12: QEMU 10 and iproute2 6.15 are in
bookworm-backports), enabled by reusing the mirror the machine's apt sources already name.

Pure parts (os-release, deb822 and one-line sources, `apt-cache policy` version tables, the choice of suite) are
separate from the one that writes (`enable_backports`), so each can be tested without apt.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from functools import cmp_to_key
from pathlib import Path

from tests.kernel.lab.debversion import at_least, compare_versions
from tests.kernel.lab.errors import LabUnavailable


@dataclass(frozen=True)
class Need:
    """A Debian package the lab wants at `minimum` or later; without a `required` one the lab is unavailable."""

    package: str
    minimum: str
    why: str
    required: bool


#: QEMU 7.2 (Debian 12's own) speaks only VFIO migration v1, which Linux 6.x removed; 8.0 has v2.
QEMU = Need("qemu-system-x86", "1:8.0", "VFIO migration v2 in QEMU (Debian 12's 7.2 has only the removed v1)", True)
#: iproute2 6.15 has `vdpa dev set` and `device_features`: the peer the vdpa tests compare devmig with. Optional:
#: those tests compare with whichever iproute2 the machine has.
IPROUTE2 = Need("iproute2", "6.15", "iproute2's vdpa with `dev set` and device_features", False)
#: libvirt in the guest, for the real libvirt migrations with devmig's hook (tests/kernel/guest/libvirt_hosts.py):
#: the monolithic daemon, its QEMU driver and virsh. 10.5 passes the source's hook `release end migrated`; Debian
#: 12's own 9.0 does not, and bookworm-backports has 11.3.
LIBVIRT = tuple(
    Need(package, "10.5", "libvirt migrating a VM with devmig's hook (release end migrated since 10.5)", True)
    for package in ("libvirt-daemon", "libvirt-daemon-driver-qemu", "libvirt-clients")
)
LAB_NEEDS = (QEMU, IPROUTE2, *LIBVIRT)

#: the name of the apt sources file the lab writes (a devmig file: it never edits the machine's own)
BACKPORTS_FILE = "devmig-{codename}-backports.sources"


def parse_os_release(text: str) -> dict[str, str]:
    """KEY=value pairs of /etc/os-release (values unquoted)."""
    fields = {}
    for line in text.splitlines():
        key, sep, value = line.strip().partition("=")
        if sep and key and not key.startswith("#"):
            fields[key] = value.strip().strip("\"'")
    return fields


def codename(os_release: Mapping[str, str]) -> str:
    name = os_release.get("VERSION_CODENAME", "")
    if not re.fullmatch(r"[a-z][a-z0-9-]*", name):
        raise LabUnavailable("cannot tell the Debian release: /etc/os-release has no VERSION_CODENAME")
    return name


@dataclass(frozen=True)
class Source:
    """One apt source entry: `deb` lines only (deb-src gives no binaries)."""

    uris: tuple[str, ...]
    suites: tuple[str, ...]
    components: tuple[str, ...]
    signed_by: str | None


def _deb822_stanzas(text: str) -> Iterator[dict[str, str]]:
    fields: dict[str, str] = {}
    key = ""
    for raw in [*text.splitlines(), ""]:
        line = raw.rstrip()
        if line.startswith("#"):
            continue
        if not line:
            if fields:
                yield fields
            fields, key = {}, ""
        elif line[0].isspace() and key:
            fields[key] += "\n" + line.strip()  # a continuation line (Signed-By may hold a whole key)
        else:
            key, _, value = line.partition(":")
            key = key.strip().lower()
            fields[key] = value.strip()


def parse_deb822_sources(text: str) -> list[Source]:
    """The enabled `Types: deb` entries of a .sources file."""
    sources = []
    for fields in _deb822_stanzas(text):
        if "deb" not in fields.get("types", "").split() or fields.get("enabled", "yes").lower() == "no":
            continue
        signed_by = fields.get("signed-by")
        sources.append(
            Source(
                tuple(fields.get("uris", "").split()),
                tuple(fields.get("suites", "").split()),
                tuple(fields.get("components", "").split()),
                signed_by if signed_by and "\n" not in signed_by else None,  # an inline key is not copied
            )
        )
    return sources


def parse_one_line_sources(text: str) -> list[Source]:
    """The `deb [options] URI suite component...` lines of a sources.list."""
    sources = []
    for raw in text.splitlines():
        line = raw.split("#", 1)[0].strip()
        if not line.startswith("deb ") and not line.startswith("deb\t"):
            continue
        options: dict[str, str] = {}
        rest = line[3:].strip()
        if rest.startswith("["):
            inner, _, rest = rest[1:].partition("]")
            for option in inner.split():
                name, _, value = option.partition("=")
                options[name.lower()] = value
        words = rest.split()
        if len(words) >= 2:
            sources.append(Source((words[0],), (words[1],), tuple(words[2:]), options.get("signed-by")))
    return sources


def read_sources(etc: Path) -> list[Source]:
    """Every enabled `deb` entry under `etc`/apt (sources.list, sources.list.d/*.list and *.sources)."""
    apt = etc / "apt"
    sources = []
    one_line = [apt / "sources.list", *sorted((apt / "sources.list.d").glob("*.list"))]
    for path in one_line:
        if path.is_file():
            sources += parse_one_line_sources(path.read_text(errors="replace"))
    for path in sorted((apt / "sources.list.d").glob("*.sources")):
        sources += parse_deb822_sources(path.read_text(errors="replace"))
    return sources


def backports_entry(sources: Sequence[Source], release: str) -> str | None:
    """A deb822 entry for `release`-backports main on the mirror that serves `release` itself; None when the
    sources already have that suite. LabUnavailable when no entry serves `release` (nothing to reuse)."""
    backports = f"{release}-backports"
    if any(backports in source.suites for source in sources):
        return None
    for source in sources:
        if release in source.suites and source.uris:
            lines = ["Types: deb", f"URIs: {source.uris[0]}", f"Suites: {backports}", "Components: main"]
            if source.signed_by:
                lines.append(f"Signed-By: {source.signed_by}")
            return "\n".join(lines) + "\n"
    raise LabUnavailable(f"no apt source for {release} to take the mirror of {backports} from")


def enable_backports(etc: Path, release: str) -> Path | None:
    """Write the backports entry to a devmig file under `etc`/apt/sources.list.d when the sources lack it; the
    file written, or None when nothing was needed. Idempotent."""
    entry = backports_entry(read_sources(etc), release)
    if entry is None:
        return None
    path = etc / "apt" / "sources.list.d" / BACKPORTS_FILE.format(codename=release)
    try:
        tmp = path.with_name(f".{path.name}.tmp")
        tmp.write_text(entry)
        tmp.chmod(0o644)
        tmp.replace(path)
    except OSError as exc:
        raise LabUnavailable(f"cannot write {path}: {exc.strerror}") from exc
    return path


@dataclass(frozen=True)
class Offer:
    version: str
    suites: tuple[str, ...]  # the suites apt has it from ("bookworm-backports"); empty: only installed


def parse_apt_offers(text: str) -> dict[str, list[Offer]]:
    """{package: the versions in its `apt-cache policy` version table, with the suites offering each}."""
    offers: dict[str, list[Offer]] = {}
    name: str | None = None
    in_table = False
    for line in text.splitlines():
        if line and not line[0].isspace() and line.rstrip().endswith(":"):
            name, in_table = line.rstrip()[:-1].removesuffix(":amd64"), False
            offers[name] = []
        elif name is not None and line.strip() == "Version table:":
            in_table = True
        elif name is not None and in_table:
            plain = line.replace("***", "   ")  # the installed version's mark
            indent = len(plain) - len(plain.lstrip())
            words = plain.split()
            if indent >= 8 and len(words) >= 3 and words[0].isdigit() and "/" in words[2] and offers[name]:
                # "        500 http://mirror/debian bookworm-backports/main amd64 Packages"
                last = offers[name][-1]
                offers[name][-1] = Offer(last.version, (*last.suites, words[2].split("/", 1)[0]))
            elif indent < 8 and len(words) == 2:
                offers[name].append(Offer(words[0], ()))  # "     1:10.0.2+ds-2+deb13u1~bpo12+1 100"
    return offers


def choose_release(need: Need, candidate: str | None, offers: Sequence[Offer], release: str) -> str | None:
    """How to install `need`: "" for the default suite (its candidate is new enough), a suite name for
    `apt-get install -t SUITE` (preferring `release`-backports), None when no offer is new enough."""
    if at_least(candidate, need.minimum):
        return ""
    good = [offer for offer in offers if offer.suites and at_least(offer.version, need.minimum)]
    if not good:
        return None
    backports = f"{release}-backports"
    if any(backports in offer.suites for offer in good):
        return backports
    return max(good, key=cmp_to_key(_by_version)).suites[0]


def _by_version(a: Offer, b: Offer) -> int:
    return compare_versions(a.version, b.version)
