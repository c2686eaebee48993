"""devmig as an mdevctl callout: `SCRIPT -t TYPE -e EVENT -a ACTION -s STATE -u UUID -p PARENT`, the device's
JSON on stdin (mdevctl.rst, src/callouts.rs; docs/provisioning.md has the contract as devmig answers it).

mdevctl runs the scripts of its callout directory for every operation and takes the first whose exit status is not 2;
2 means "not my type, ask the next". devmig answers:

- `pre define|modify|start`: the definition's `migration/<param>` attributes judged against the type's capability
  (devmig.compat.attributes): 0 when the type takes them, 1 with every reason on stderr when it does not (mdevctl
  then stops before changing anything and shows the reasons);
- `get attributes` of a running device whose driver declares the migration interface: its live `migration/<param>`
  values, as mdevctl's JSON list of one-key objects on stdout (mdevctl records them when it defines a running device);
- 2 for everything else: a type devmig cannot describe (no driver interface, no profile), a type not on this host,
  a definition without `migration/` attributes (nothing of devmig's to judge: another script for the type gets its
  turn), and every other event and action (post, notify, stop, undefine, get capabilities, live).

A request devmig cannot read (arguments not in mdevctl's form, stdin that is not mdevctl's device JSON) is refused:
exit 1 with one line. 2 would make mdevctl go on silently (it shows a script's stderr only for the script it takes).

This runs for every mdevctl operation: the drop-in filters the events in shell, and this module imports only the
standard library and the sysfs seam until there is something to judge (tests/cli/test_read_path_imports.py).
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, BinaryIO

from devmig.errors import DevmigError, ExitCode, InputError

if TYPE_CHECKING:
    from devmig.host.devices import MdevType
    from devmig.host.profile import Profile
    from devmig.host.sysfs import Sysfs
    from devmig.model.descriptor import TypeCapability

#: mdevctl's exit statuses for a callout (mdevctl.rst, "CALL-OUT EVENT SCRIPTS")
OK, REFUSED, NOT_HANDLED = 0, 1, 2
#: the callout's arguments as mdevctl passes them (each once, in this order; devmig takes any order)
ARGUMENTS = {"-t": "type", "-e": "event", "-a": "action", "-s": "state", "-u": "uuid", "-p": "parent"}
#: (event, action) -> what devmig does; every other pair is not devmig's (exit 2)
HANDLED: dict[tuple[str, str], str] = {
    ("pre", "define"): "check",
    ("pre", "modify"): "check",
    ("pre", "start"): "check",
    ("get", "attributes"): "attributes",
}
#: mdevctl's device JSON is a few hundred bytes; more is not mdevctl's
MAX_STDIN = 1024 * 1024
MDEV_BUS = "sys/class/mdev_bus"
MDEV_DEVICES = "sys/bus/mdev/devices"
USAGE = (
    "expected mdevctl's callout arguments: -t TYPE -e EVENT -a ACTION -s STATE -u UUID -p PARENT "
    "(and the device's JSON on stdin)"
)


class CalloutInputError(InputError):
    """A request the callout cannot read: refused (mdevctl's 1), not skipped (its 2)."""

    exit_code = ExitCode.REFUSED


@dataclass(frozen=True)
class Request:
    type: str
    event: str
    action: str
    state: str
    uuid: str
    parent: str

    @property
    def what(self) -> str:
        return f"mdev {self.uuid} (type {self.type} on {self.parent})"


@dataclass(frozen=True)
class Answer:
    code: int
    stdout: str = ""
    stderr: str = ""


def parse_request(args: Sequence[str]) -> Request:
    values: dict[str, str] = {}
    i = 0
    while i < len(args):
        option = args[i]
        if option not in ARGUMENTS:
            raise CalloutInputError(f"unexpected argument {option!r}: {USAGE}")
        if i + 1 >= len(args):
            raise CalloutInputError(f"{option} needs a value: {USAGE}")
        field = ARGUMENTS[option]
        if field in values:
            raise CalloutInputError(f"{option} given twice: {USAGE}")
        values[field] = args[i + 1]
        i += 2
    missing = [option for option, field in ARGUMENTS.items() if field not in values]
    if missing:
        raise CalloutInputError(f"missing {', '.join(missing)}: {USAGE}")
    for field in ("type", "parent", "uuid"):
        value = values[field]
        if not value or "/" in value or "\x00" in value or value in (".", ".."):
            raise CalloutInputError(f"{field} {value!r}: expected a name as sysfs shows it (no /): {USAGE}")
    return Request(**values)


def parse_attrs(data: bytes) -> list[tuple[str, str]]:
    """The `attrs` of mdevctl's device JSON (`{"mdev_type": T, "start": S, "attrs": [{NAME: VALUE}, ...]}`), as
    (name, text) pairs in order."""
    expected = 'expected mdevctl\'s device JSON {"mdev_type": ..., "start": ..., "attrs": [{"NAME": "VALUE"}, ...]}'
    if len(data) > MAX_STDIN:
        raise CalloutInputError(f"stdin: larger than {MAX_STDIN // 1024} KiB: {expected}")
    try:
        config = json.loads(data.decode("utf-8").rstrip("\x00"))
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        reason = "empty" if not data.strip() else f"not JSON ({str(exc).splitlines()[0][:80]})"
        raise CalloutInputError(f"stdin: {reason}: {expected}") from None
    if not isinstance(config, dict):
        raise CalloutInputError(f"stdin: a JSON {type(config).__name__}: {expected}")
    attrs = config.get("attrs", [])
    if attrs is None:
        return []
    if not isinstance(attrs, list):
        raise CalloutInputError(f"stdin: attrs is a JSON {type(attrs).__name__}: {expected}")
    pairs: list[tuple[str, str]] = []
    for index, item in enumerate(attrs):
        if not isinstance(item, dict) or len(item) != 1:
            raise CalloutInputError(f"stdin: attrs[{index}] is not an object of one attribute: {expected}")
        ((name, value),) = item.items()
        if not isinstance(value, str):
            raise CalloutInputError(f"stdin: attrs[{index}] {name}: its value is not a string: {expected}")
        pairs.append((name, value))
    return pairs


# -- the host ---------------------------------------------------------------------------------------------------


def _type_dir(sysfs: Sysfs, request: Request) -> tuple[str, str] | None:
    """(parent path, type path) of the request's type on this host, None when the host has no such type."""
    from devmig.host.scan import Scan

    rel = f"{MDEV_BUS}/{request.parent}"
    if not sysfs.exists(rel):
        return None
    parent_path = Scan(sysfs).resolve(f"mdev parent {request.parent}", rel, must_exist=True)
    if parent_path is None:
        return None  # a broken entry: devmig cannot describe the type
    type_path = f"{parent_path}/mdev_supported_types/{request.type}"
    return (parent_path, type_path) if sysfs.isdir(type_path) else None


def capability(
    sysfs: Sysfs, request: Request, parent_path: str, type_path: str, profiles: Sequence[Profile]
) -> TypeCapability:
    """The type's capability, as `devmig capabilities` gives it, reading only its parent and the type."""
    from devmig.host.describe import Describer
    from devmig.host.devices import MdevParent
    from devmig.host.inventory import Inventory
    from devmig.host.mdev import read_type
    from devmig.host.pci import read_function
    from devmig.host.scan import Scan

    scan = Scan(sysfs)
    obj = f"mdev parent {request.parent}"
    parent = MdevParent(request.parent, parent_path, scan.link(obj, f"{parent_path}/subsystem"))
    parent.driver = scan.link(obj, f"{parent_path}/driver")
    mtype: MdevType = read_type(scan, request.parent, request.type, type_path)
    parent.types.append(mtype)
    # a PCI parent's IDs and driver are facts profiles use (parent_pci_id, parent_driver)
    pci = [read_function(scan, request.parent, parent_path)] if parent.subsystem == "pci" else []
    inventory = Inventory(root=sysfs, pci=pci, parents=[parent])
    return Describer(inventory, profiles).type_capability(mtype)


def check(request: Request, attrs: list[tuple[str, str]], cap: TypeCapability) -> Answer:
    from devmig.compat.attributes import check_attributes

    findings = check_attributes(cap, attrs)
    if not findings:
        return Answer(OK)
    lines = [f"{request.what}: {request.action} refused by devmig, the type does not take these attributes:"]
    lines += [f"  {f.message} [{f.code}]" for f in findings]
    return Answer(REFUSED, stderr="\n".join(lines) + "\n")


def live_attributes(sysfs: Sysfs, request: Request, cap: TypeCapability) -> Answer:
    """The running device's `migration/<param>` values in the type's order, as mdevctl records attrs."""
    from devmig.host.describe import parse_param_text
    from devmig.model.params import param_text

    rel = f"{MDEV_DEVICES}/{request.uuid}"
    if not sysfs.exists(rel):
        raise DevmigError(f"{request.what}: not running (no {rel}): devmig reads the attributes of a running mdev")
    attrs = []
    for name, spec in cap.param_specs().items():
        path = f"{rel}/migration/{name}"
        text = sysfs.read_optional(path)
        if text is None:
            raise DevmigError(f"{request.what}: {path} is missing, but the type declares parameter {name}")
        attrs.append({f"migration/{name}": param_text(parse_param_text(spec, text, path))})
    return Answer(OK, stdout=json.dumps(attrs) + "\n")


def answer(
    args: Sequence[str],
    stdin: Callable[[], bytes],
    sysfs: Callable[[], Sysfs],
    profiles: Callable[[], Sequence[Profile]],
) -> Answer:
    """mdevctl's question (`args`, `stdin` read only when the event carries the device's JSON) answered on the host
    `sysfs` gives. Never raises a DevmigError: it is the answer's code and stderr."""
    try:
        request = parse_request(args)
        handling = HANDLED.get((request.event, request.action))
        if handling is None:
            return Answer(NOT_HANDLED)
        attrs = parse_attrs(stdin()) if handling == "check" else []
        if handling == "check" and not any(name.startswith("migration/") for name, _ in attrs):
            return Answer(NOT_HANDLED)  # nothing of devmig's to judge: the type's own script, if any, decides
        host = sysfs()
        found = _type_dir(host, request)
        if found is None:
            return Answer(NOT_HANDLED)
        declared = host.exists(f"{found[1]}/migration_info.json")
        if handling == "attributes" and not declared:
            return Answer(NOT_HANDLED)  # no driver interface: the device has no migration/ attributes to report
        # a declared type is described from its own file: the profiles (a third of a second to load) are not read
        cap = capability(host, request, *found, [] if declared else profiles())
        if cap.confidence == "unverified":
            return Answer(NOT_HANDLED)
        return check(request, attrs, cap) if handling == "check" else live_attributes(host, request, cap)
    except DevmigError as exc:
        return Answer(REFUSED, stderr=f"devmig mdevctl callout: {exc}\n")


def _read(stream: BinaryIO) -> bytes:
    return stream.read(MAX_STDIN + 1)


def main(argv: Sequence[str]) -> int:
    """`devmig mdevctl callout [--sysfs-root DIR] [--profiles-dir DIR] [--] ARGS...`, run without click (the quick
    path, devmig.cli.quick): print the answer, return its exit status."""
    args = list(argv)
    options: dict[str, str] = {}
    while args and args[0] in ("--sysfs-root", "--profiles-dir"):
        if len(args) < 2:
            print(f"devmig mdevctl callout: {args[0]} needs a value", file=sys.stderr)
            return REFUSED
        options[args[0]] = args[1]
        del args[:2]
    if args[:1] == ["--"]:
        del args[0]

    def host() -> Sysfs:
        from devmig.host.sysfs import SysfsRoot

        return SysfsRoot.from_env(options.get("--sysfs-root"))

    def profiles() -> Sequence[Profile]:
        from devmig.host.profile import load_profiles

        return load_profiles(options.get("--profiles-dir"))

    result = answer(args, lambda: _read(sys.stdin.buffer), host, profiles)
    if result.stdout:
        sys.stdout.write(result.stdout)
        sys.stdout.flush()
    if result.stderr:
        sys.stderr.write(result.stderr)
    return result.code
