"""Reading the documents named on the command line (a path, or - for standard input)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TypeVar

from pydantic import BaseModel

from devmig.errors import InputError
from devmig.model.load import parse_document

M = TypeVar("M", bound=BaseModel)

#: No format document comes near this; a larger input is a mistake (or hostile) and is refused unread.
MAX_DOCUMENT_BYTES = 16 * 1024 * 1024


def read_input(path: str) -> tuple[bytes, str]:
    """The bytes of `path` (or stdin for '-') and the name to use for it in messages."""
    if path == "-":
        data = sys.stdin.buffer.read(MAX_DOCUMENT_BYTES + 1)
        origin = "<stdin>"
    else:
        origin = path
        try:
            with Path(path).open("rb") as handle:
                data = handle.read(MAX_DOCUMENT_BYTES + 1)
        except OSError as exc:
            raise InputError(f"{path}: cannot read: {exc.strerror or exc}") from None
    if len(data) > MAX_DOCUMENT_BYTES:
        raise InputError(f"{origin}: larger than {MAX_DOCUMENT_BYTES // (1024 * 1024)} MiB: expected a JSON document")
    return data, origin


def load(cls: type[M], path: str) -> M:
    data, origin = read_input(path)
    return parse_document(cls, data, origin)


def single_stdin(*paths: str) -> None:
    if sum(1 for p in paths if p == "-") > 1:
        raise InputError("only one input can be read from standard input ('-')")
