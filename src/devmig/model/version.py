"""Software versions as the 2020 thread agreed them: major.minor.bugfix.

Sean Mooney's rule, endorsed by Alex Williamson: no compatibility across majors, minors are forward compatible
only (a destination may be newer), the bugfix number only ranks otherwise equal candidates.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Annotated, Any

from pydantic import BeforeValidator, PlainSerializer, WithJsonSchema

VERSION_PATTERN = r"^(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)$"
_VERSION_RE = re.compile(VERSION_PATTERN)


@dataclass(frozen=True, order=True, slots=True)
class SoftwareVersion:
    major: int
    minor: int
    bugfix: int

    @classmethod
    def parse(cls, text: str) -> SoftwareVersion:
        match = _VERSION_RE.fullmatch(text)
        if match is None:
            raise ValueError(f"expected a version 'major.minor.bugfix' of three whole numbers, found {text!r}")
        return cls(int(match[1]), int(match[2]), int(match[3]))

    def __str__(self) -> str:
        return f"{self.major}.{self.minor}.{self.bugfix}"

    def accepts_from(self, source: SoftwareVersion) -> bool:
        """True when a device of version `source` may migrate to a destination of this version."""
        return self.major == source.major and self.minor >= source.minor


def _coerce_version(value: Any) -> SoftwareVersion:
    if isinstance(value, SoftwareVersion):
        return value
    if not isinstance(value, str):
        raise ValueError(f"expected a version string 'major.minor.bugfix', found {type(value).__name__}")
    return SoftwareVersion.parse(value)


#: The field type used by the formats: a string in JSON, a SoftwareVersion in Python.
VersionField = Annotated[
    SoftwareVersion,
    BeforeValidator(_coerce_version),
    PlainSerializer(str, return_type=str),
    WithJsonSchema(
        {
            "type": "string",
            "pattern": VERSION_PATTERN,
            "description": "major.minor.bugfix; same major and destination minor >= source minor migrate",
        }
    ),
]
