"""iproute2's two output layers, for one run of `vdpa`: json_print (one call prints a field either as text or as
JSON, as the mode says) over json_writer (commas, `-p`'s 4-space indents, inline arrays `[ "net" ]` and `[ ]`, its
own string escapes, the "\\n" printed when the writer is destroyed), plus the helpers of `vdpa/vdpa.c` that open a
section or a device. Pure: `Output` collects what goes to stdout.

Checked against /usr/sbin/vdpa (iproute2 6.1.0) on vdpa_sim in the kernel tier (tests/kernel/guest/test_vdpa_cli.py).
"""

from __future__ import annotations

from collections.abc import Sequence

Scalar = str | int | bool

#: json_writer's escapes (jsonw_puts), as iproute2 6.1's binary prints them; every other character, other control
#: characters (\x01, \x7f) and non-ASCII included, is printed as it is (so not always valid JSON, but what scripts get)
JSON_ESCAPES: dict[str, str] = {
    "\t": "\\t",
    "\n": "\\n",
    "\r": "\\r",
    "\f": "\\f",
    "\b": "\\b",
    "\\": "\\\\",
    '"': '\\"',
}
#: json_writer's indent for each nesting level with -p
JSON_INDENT = "    "
#: the text indent step of iproute2's `inc_indent` (the lines under "NAME: " in `mgmtdev show`)
TEXT_INDENT = "  "


def json_string(text: str) -> str:
    return '"' + "".join(JSON_ESCAPES.get(c, c) for c in text) + '"'


def json_scalar(value: Scalar) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    return json_string(value)


def text_scalar(value: Scalar) -> str:
    """How print_bool/print_uint/print_string show a value in text mode."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


class Output:
    """iproute2's json_print over its json_writer, for one run of the command: collect what goes to stdout."""

    def __init__(self, json: bool = False, pretty: bool = False) -> None:
        self.json, self.pretty = json, pretty
        self._parts: list[str] = []
        # json_writer's state: nesting depth and the separator owed before the next element ("" or ",")
        self._depth = 0
        self._sep = ""
        # the text indent (inc_indent/dec_indent)
        self._indent = 0

    # --- json_writer -------------------------------------------------------------------------------------------

    def _put(self, text: str) -> None:
        self._parts.append(text)

    def _eol(self) -> None:
        if self.pretty:
            self._put("\n" + JSON_INDENT * self._depth)

    def _eor(self) -> None:
        self._put(self._sep)
        self._sep = ","

    def _name(self, key: str) -> None:
        self._eor()
        self._eol()
        self._sep = ""
        self._put(json_string(key) + (": " if self.pretty else ":"))

    def _begin(self, key: str | None, bracket: str) -> None:
        if key is not None:
            self._name(key)
        self._eor()
        self._put(bracket)
        self._depth += 1
        self._sep = ""

    def _end(self, bracket: str) -> None:
        self._depth -= 1
        if self._sep:
            self._eol()
        self._put(bracket)
        self._sep = ","

    # --- json_print ------------------------------------------------------------------------------------------

    def open_object(self, key: str | None = None) -> None:
        if self.json:
            self._begin(key, "{")

    def close_object(self) -> None:
        if self.json:
            self._end("}")

    def field(self, key: str | None, text: str, value: Scalar) -> None:
        """One print_*(PRINT_ANY, key, fmt, value) call: `text` is the formatted text (fmt applied to value)."""
        if not self.json:
            self._put(text)
            return
        if key is not None:
            self._name(key)
        self._eor()
        self._put(json_scalar(value))

    def nl(self) -> None:
        """print_nl: a newline in text mode only."""
        if not self.json:
            self._put("\n")

    # --- vdpa.c's helpers ----------------------------------------------------------------------------------------

    def section_start(self, name: str) -> None:
        """pr_out_section_start: the document's object and the named section in it (JSON only)."""
        self.open_object()
        self.open_object(name)

    def section_end(self) -> None:
        self.close_object()
        self.close_object()

    def handle_start(self, name: str) -> None:
        """An object per device (JSON), "NAME: " (text)."""
        if self.json:
            self.open_object(name)
        else:
            self._put(f"{name}: ")

    def handle_end(self) -> None:
        if self.json:
            self.close_object()
        else:
            self._put("\n")

    def array(self, key: str, items: Sequence[tuple[str, Scalar]]) -> None:
        """pr_out_array_start/end around the items, each (text, JSON value): in text, a new line indented one
        step, the key, then " item" for each."""
        if self.json:
            self._begin(key, "[")
            if self.pretty:
                self._put(" ")
            for _, value in items:
                self._eor()
                self._put(json_scalar(value))
            if self.pretty and self._sep:
                self._put(" ")
            self._sep = ""
            self._end("]")
            return
        self._indent += 1
        self._put("\n" + TEXT_INDENT * self._indent + key)
        for text, _ in items:
            self._put(f" {text}")
        self._indent -= 1

    # --- the result ----------------------------------------------------------------------------------------------

    def text(self) -> str:
        """What was printed so far."""
        return "".join(self._parts)

    def finish(self) -> str:
        """Everything, with the "\\n" iproute2's JSON writer prints when it is destroyed (also after a command that
        printed nothing, or one that failed)."""
        return self.text() + ("\n" if self.json else "")


__all__ = [
    "JSON_ESCAPES",
    "JSON_INDENT",
    "TEXT_INDENT",
    "Output",
    "Scalar",
    "json_scalar",
    "json_string",
    "text_scalar",
]
