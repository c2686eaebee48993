"""Turn JSON text into a format model, with errors that name the origin, the JSON path and what was expected.

Pure: the caller reads the bytes (a file, stdin, sysfs) and names where they came from.
"""

from __future__ import annotations

import json
import re
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from devmig.errors import InputError

M = TypeVar("M", bound=BaseModel)

#: pydantic's union members show up in error locations; they are not part of the document's path.
_UNION_TAGS = {"bool", "int", "str", "none", "list[union[bool,int,str]]", "dict[str,str]"}


def json_path(loc: tuple[int | str, ...]) -> str:
    """`('models', 'a/b', 'params', 'x', 3)` -> `$.models["a/b"].params.x[3]`."""
    out = "$"
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif part.isidentifier():
            out += f".{part}"
        else:
            out += f"[{json.dumps(part)}]"
    return out


def _reject_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise ValueError(f"duplicate key {key!r}")
        out[key] = value
    return out


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


#: a \uD800-\uDFFF escape: half of a surrogate pair, which json.loads decodes alone when its other half is missing
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F][0-9a-fA-F]{2}")


def _lone_surrogate(value: Any, loc: tuple[int | str, ...] = ()) -> str | None:
    """Where the first string (key or value) that is not text is, and what it holds, or None. A lone surrogate
    cannot be encoded again, so a document holding one could be read but never written out (a descriptor printed,
    a plan's value written to sysfs)."""
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError as exc:
            return f"{json_path(loc)}: not UTF-8 text: a lone surrogate {value[exc.start]!r} at character {exc.start}"
        return None
    items = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else ()
    for key, item in items:
        found = _lone_surrogate(key, (*loc, key)) if isinstance(key, str) else None
        found = found if found is not None else _lone_surrogate(item, (*loc, key))
        if found is not None:
            return found
    return None


def parse_json(text: str | bytes, origin: str) -> Any:
    """Parse JSON strictly: no duplicate keys, no NaN or Infinity, no string that is not Unicode text."""
    if isinstance(text, bytes):
        try:
            text = text.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise InputError(f"{origin}: not UTF-8 text (byte {exc.start}): expected a JSON document") from None
    if not text.strip():
        raise InputError(f"{origin}: empty: expected a JSON document")
    try:
        value = json.loads(text, object_pairs_hook=_reject_duplicates, parse_constant=_reject_constant)
        if _SURROGATE_ESCAPE.search(text):  # rare: only then is the whole value walked
            where = _lone_surrogate(value)
            if where is not None:
                raise InputError(f"{origin}: {where}")
        return value
    except json.JSONDecodeError as exc:
        raise InputError(f"{origin}: not valid JSON at line {exc.lineno} column {exc.colno}: {exc.msg}") from None
    except ValueError as exc:
        raise InputError(f"{origin}: not valid JSON: {exc}") from None
    except RecursionError:
        raise InputError(f"{origin}: not valid JSON: nested too deeply") from None


def _shown(value: Any) -> str:
    """A value in a message: as JSON, cut short. YAML documents (labs) also hold dates, sets and bytes: str() them."""
    return json.dumps(value, default=str)[:60]


def _describe(error: Any) -> tuple[str, str]:
    raw = tuple(error["loc"])
    msg: str = error["msg"]
    kind: str = error["type"]
    if kind in ("extra_forbidden", "missing") and raw:
        # the last part is the field itself, even when a document names it "int" or "str" like a union tag
        raw, field = raw[:-1], raw[-1]
        msg = f"unknown field {field!r}" if kind == "extra_forbidden" else f"missing required field {field!r}"
    loc = tuple(p for p in raw if not (isinstance(p, str) and p in _UNION_TAGS))
    if msg.startswith("Value error, "):
        msg = msg[len("Value error, ") :]
    elif kind == "string_pattern_mismatch":
        msg = f"expected text matching {error['ctx']['pattern']}, found {error['input']!r}"
    elif kind.endswith("_type") or kind == "model_type":
        msg = f"{msg[0].lower()}{msg[1:]}, found {_shown(error['input'])}"
    return json_path(loc), msg


def problem(exc: ValidationError) -> str:
    """A validation error as one line: the first problem's JSON path and what was wrong, and how many more."""
    errors = exc.errors(include_url=False)
    # A union yields one error per member at the same path: group them and report the path once.
    problems: dict[str, list[tuple[str, Any]]] = {}
    for error in errors:
        path, msg = _describe(error)
        problems.setdefault(path, []).append((msg, error))
    path, group = next(iter(problems.items()))
    msg = group[0][0]
    if len(group) > 1 and all(e["type"].endswith("_type") for _, e in group):
        msg = f"expected a bool, an int or a string, found {_shown(group[0][1]['input'])}"
    more = len(problems) - 1
    suffix = f" (and {more} more problem{'s' if more > 1 else ''})" if more else ""
    return f"{path}: {msg}{suffix}"


def validate_document(cls: type[M], data: Any, origin: str) -> M:
    """Validate parsed JSON against a format model; raise InputError with the first problem."""
    try:
        return cls.model_validate(data)
    except ValidationError as exc:
        raise InputError(f"{origin}: {problem(exc)}") from None


def parse_document(cls: type[M], text: str | bytes, origin: str) -> M:
    """Parse and validate one JSON document of a format."""
    return validate_document(cls, parse_json(text, origin), origin)
