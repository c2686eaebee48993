"""Fuzzing lab files (YAML and JSON), as `devmig lab` and `--host sim:LAB/HOST` read them: the file is parsed,
validated and built into simulated hosts; whatever fails must fail as a DevmigError."""

from __future__ import annotations

import json
import tempfile
import time
import tracemalloc
from importlib import resources
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st

from devmig.errors import InputError
from devmig.sim.lab import MAX_LAB_BYTES, Lab, load_lab
from tests.fuzz.harness import fuzz, outcome
from tests.fuzz.strategies import damaged_text, json_values, mutated

DEFAULT_TEXT = (resources.files("devmig.sim.labs") / "default.yaml").read_text(encoding="utf-8")
DEFAULT = yaml.safe_load(DEFAULT_TEXT)
#: small labs too, so mutations of a single host are frequent
SMALL = [{"name": "small", "hosts": [host]} for host in DEFAULT["hosts"]]
YAML_SNIPPETS = [
    "&a",
    "*a",
    "<<: ",
    "!!binary ",
    "!!set ",
    "!!python/object ",
    "? ",
    "- ",
    ": ",
    "{",
    "[",
    "'",
    '"',
    "\t",
]


def _load(data: bytes, suffix: str) -> object:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / f"lab{suffix}"
        path.write_bytes(data)
        return outcome(f"lab {suffix[1:]}", lambda: load_lab(str(path)))


@fuzz(share=0.15)
@given(st.binary(max_size=300), st.sampled_from([".yaml", ".json"]))
def test_random_bytes(data: bytes, suffix: str) -> None:
    _load(data, suffix)


@fuzz(share=0.15)
@given(st.lists(st.sampled_from(YAML_SNIPPETS) | st.text(max_size=8), max_size=30))
def test_random_yaml_text(parts: list[str]) -> None:
    _load("".join(parts).encode("utf-8", "surrogatepass"), ".yaml")


@fuzz(share=0.1)
@given(json_values)
def test_random_json(value: Any) -> None:
    _load(json.dumps(value).encode(), ".json")


@fuzz(share=0.15)
@given(st.data())
def test_damaged_default_lab(data: st.DataObject) -> None:
    _load(data.draw(damaged_text(DEFAULT_TEXT.encode())), ".yaml")


@fuzz(share=0.45)
@given(mutated([DEFAULT, *SMALL], max_mutations=3), st.booleans())
def test_mutated_labs(doc: Any, as_yaml: bool) -> None:
    """Near the format: most cases reach the simulated kernels, their drivers and their devices."""
    if as_yaml:
        _load(yaml.safe_dump(doc, allow_unicode=True).encode("utf-8", "surrogatepass"), ".yaml")
    else:
        _load(json.dumps(doc).encode(), ".json")


@fuzz(share=0.05)
@given(mutated(SMALL, max_mutations=1) | st.sampled_from(SMALL), st.booleans())
def test_a_loaded_lab_reads_back_the_same(doc: Any, as_yaml: bool) -> None:
    """A lab that loads, written out again (JSON or YAML), loads to the same lab."""
    lab = _load(json.dumps(doc).encode(), ".json")
    if not isinstance(lab, Lab):
        return
    again = lab.spec.model_dump(mode="json")
    text = yaml.safe_dump(again, allow_unicode=True) if as_yaml else json.dumps(again)
    reread = _load(text.encode(), ".yaml" if as_yaml else ".json")
    assert isinstance(reread, Lab) and reread.spec == lab.spec


@fuzz(share=0.05)
@given(st.sampled_from(SMALL), st.data())
def test_a_json_lab_cut_short_is_refused(doc: Any, data: st.DataObject) -> None:
    """JSON, unlike YAML, has no prefix that is a whole document: a cut lab file is never taken for a smaller lab."""
    text = json.dumps(doc).encode()
    cut = data.draw(st.integers(0, len(text) - 1))
    assert isinstance(_load(text[:cut], ".json"), InputError), f"lab cut at byte {cut} of {len(text)} was loaded"


# -- bombs and giants: each refused quickly, in little memory -------------------------------------------------------


def _laughs(levels: int, fan: int = 10) -> str:
    lines = [f"l0: &l0 [{', '.join(['lol'] * fan)}]"]
    lines += [f"l{i}: &l{i} [{', '.join([f'*l{i - 1}'] * fan)}]" for i in range(1, levels)]
    return "\n".join([*lines, f"name: bomb\nhosts: [{{name: h, description: *l{levels - 1}}}]\n"])


def _merges(levels: int) -> str:
    lines = ["m0: &m0 {a: 1}"]
    lines += [f"m{i}: &m{i} {{<<: [*m{i - 1}, *m{i - 1}], k{i}: 1}}" for i in range(1, levels)]
    return "\n".join([*lines, f"name: bomb\nhosts: [{{name: h, description: *m{levels - 1}}}]\n"])


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (_laughs(9), "more than 1000000 nodes once its aliases are expanded"),
        (_laughs(30, fan=2), "more than 1000000 nodes once its aliases are expanded"),
        (_merges(40), "more than 1000000 nodes once its aliases are expanded"),
        ("name: &a [*a]\nhosts: []\n", "an alias refers to a node that contains it"),
        ("[" * 20_000 + "]" * 20_000, "nested more than 64 deep"),
        ("{a: " * 20_000 + "1" + "}" * 20_000, "nested more than 64 deep"),
    ],
    ids=["billion-laughs", "deep-laughs", "merge-keys", "recursive-alias", "deep-sequence", "deep-mapping"],
)
def test_yaml_bombs_are_refused_in_bounded_time_and_memory(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "bomb.yaml"
    path.write_text(text)
    tracemalloc.start()
    started = time.monotonic()
    try:
        with pytest.raises(InputError, match=message):
            load_lab(str(path))
        elapsed = time.monotonic() - started
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert elapsed < 10
    assert peak < 64 * 1024 * 1024


def test_a_huge_lab_file_is_refused_unread(tmp_path: Path) -> None:
    path = tmp_path / "huge.yaml"
    with path.open("wb") as handle:
        handle.truncate(100 * 1024 * 1024)
    tracemalloc.start()
    try:
        with pytest.raises(InputError, match="larger than 1 MiB"):
            load_lab(str(path))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 4 * MAX_LAB_BYTES


@pytest.mark.parametrize(
    "text",
    [
        "name: 2001-01-01\nhosts: [{name: a}]\n",
        "name: !!set {a}\nhosts: [{name: a}]\n",
        "name: x\nhosts: [{name: a, description: !!binary /w==}]\n",
        "name: x\nhosts: [{name: a, gpus: [{address: '0000:00:02.0', release: 2001-01-01}]}]\n",
    ],
    ids=["date", "set", "binary", "date-release"],
)
def test_yaml_only_types_are_reported_as_bad_input(tmp_path: Path, text: str) -> None:
    """YAML has types JSON has not (dates, sets, bytes): the message naming them must not fail itself."""
    path = tmp_path / "lab.yaml"
    path.write_text(text)
    with pytest.raises(InputError, match=r"lab\.yaml: \$"):
        load_lab(str(path))


@pytest.mark.parametrize(
    ("text", "suffix", "path"),
    [
        ('{"name": "x", "hosts": [{"name": "a", "description": "\\ud800"}]}', ".json", "$.hosts[0].description"),
        (
            '{"name": "x", "hosts": [{"name": "a", "gpus": [{"address": "0000:00:02.0", "devices": [{"uuid": '
            '"6f1c0a2e-3b4d-4c5e-8f90-a1b2c3d4e5f6", "type": "simgpu-1G", "params": {"pv_mode": "a\\udfff"}}]}]}]}',
            ".json",
            "$.hosts[0].gpus[0].devices[0].params.pv_mode",
        ),
        ('name: x\nhosts:\n  - name: a\n    description: "\\ud800"\n', ".yaml", "$.hosts[0].description"),
        ('name: x\nhosts:\n  - name: a\n    "k\\ud800": 1\n', ".yaml", '$.hosts[0]["k\\ud800"]'),
    ],
    ids=["json-description", "json-mdev-param", "yaml-description", "yaml-key"],
)
def test_lone_surrogates_are_refused_at_the_parser(tmp_path: Path, text: str, suffix: str, path: str) -> None:
    """A "\\ud800" escape decodes to a string the simulated kernel cannot encode: refused with the file and the JSON
    path, before any host is built (found by a fuzz run outside CI: a UnicodeEncodeError in a simulated driver)."""
    lab = tmp_path / f"lab{suffix}"
    lab.write_text(text)
    with pytest.raises(InputError) as refused:
        load_lab(str(lab))
    assert str(refused.value).startswith(f"{lab}: {path}: not UTF-8 text: a lone surrogate")
