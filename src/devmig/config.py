"""devmig's config files: TOML whose keys are the command line's option names (with dashes), each of a kind checked
here. One reader for them all (/etc/devmig/migration.toml, /etc/devmig/libvirt.toml, /etc/devmig/agent.toml), so
they fail alike: one line naming the file, the key, what was found and what was expected.
"""

from __future__ import annotations

import math
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from devmig.errors import InputError


@dataclass(frozen=True)
class Kind:
    """What a key holds: how to tell a good value, the words for it, and how to convert it (a path is taken from
    the file's directory)."""

    describe: str
    fits: Callable[[Any], bool]
    convert: Callable[[Any, Path], Any] = lambda value, _base: value


def _text(value: Any) -> bool:
    return isinstance(value, str) and bool(value)


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


PATH = Kind("a path (a string)", _text, lambda value, base: base / value)
BOOL = Kind("true or false", lambda value: isinstance(value, bool))
STR = Kind("a string", _text)
NAMES = Kind(
    "a list of names",
    lambda value: isinstance(value, list) and all(_text(v) for v in value),
    lambda value, _base: tuple(value),
)
SECONDS = Kind("a number of seconds above 0", lambda value: _number(value) and value > 0, lambda v, _b: float(v))
SECONDS_OR_ZERO = Kind(
    "a number of seconds (0: off)", lambda value: _number(value) and value >= 0, lambda v, _b: float(v)
)


def choice(*values: str) -> Kind:
    return Kind(f"one of {', '.join(values)}", lambda value: value in values)


def read(path: Path, label: str, keys: Mapping[str, Kind], *, missing_ok: bool = False) -> dict[str, Any] | None:
    """The settings in the TOML file `path`, by key with dashes as underscores, converted; None when the file does
    not exist and `missing_ok`. `label` names the file in messages ("config file", "hook settings")."""
    where = f"{label} {path}"
    try:
        document = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        if missing_ok:
            return None
        raise InputError(f"cannot read {where}: no such file") from None
    except OSError as exc:
        raise InputError(f"cannot read {where}: {exc.strerror or exc}") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise InputError(f"{where}: not TOML ({exc})") from None
    except RecursionError:  # tomllib reads nested arrays and inline tables recursively, with no limit of its own
        raise InputError(f"{where}: not TOML (nested too deep)") from None
    values: dict[str, Any] = {}
    for key, value in document.items():
        name = key.replace("-", "_")
        kind = keys.get(name)
        if kind is None:
            known = ", ".join(k.replace("_", "-") for k in keys)
            raise InputError(f"{where}: unknown key {key!r} (known: {known})")
        if not kind.fits(value):
            raise InputError(f"{where}: {key} = {value!r}; expected {kind.describe}")
        values[name] = kind.convert(value, path.parent)
    return values
