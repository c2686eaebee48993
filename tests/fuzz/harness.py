"""What every fuzz test shares: the budget, the property, and the figures a long run reports.

The property: a parser given hostile input returns a result or raises a `DevmigError` with a message; any other
exception is a bug. The tests add what each parser promises where it has both directions or a check: damage is
detected (a flipped bit in a stream record, a document cut short) and valid input round-trips. Inputs are bounded
in size, so memory and time are too (and the tests that feed huge files check the bound itself).

The budget is `DEVMIG_FUZZ_EXAMPLES` cases per parser (default 2000), split among that parser's tests by their
`share`; `scripts/fuzz` raises it for a long run. With CI=true the cases are derandomized: a CI run is reproducible.
Elsewhere each run draws its cases from a fresh seed (tests/fuzz/conftest.py), given to hypothesis with `@seed` and
printed when a test fails: `--hypothesis-seed=N` (hypothesis's own option) replays that run, in CI too.
"""

from __future__ import annotations

import functools
import json
import os
import traceback
from collections import Counter, defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from hypothesis import HealthCheck, seed, settings

from devmig.errors import DevmigError
from devmig.testing.ci import in_ci

T = TypeVar("T")
F = TypeVar("F", bound=Callable[..., object])

ENV_EXAMPLES = "DEVMIG_FUZZ_EXAMPLES"
ENV_REPORT = "DEVMIG_FUZZ_REPORT"
DEFAULT_EXAMPLES = 2000
PROFILE = "devmig-fuzz"

#: cases per parser for the whole suite; each test takes its share
EXAMPLES = int(os.environ.get(ENV_EXAMPLES) or DEFAULT_EXAMPLES)
_CI = in_ci()

#: the seed of this run's cases, set by tests/fuzz/conftest.py before the test modules are imported; None: the cases
#: are derandomized (CI)
SEED: int | str | None = None

settings.register_profile(
    PROFILE,
    # a run in CI must be the same run every time; locally, new cases each run (and failures remembered)
    derandomize=_CI,
    database=None if _CI else settings.get_profile("default").database,
    # file system work makes timings noisy; the bounds on time are asserted where they matter, not per case
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much],
    print_blob=True,
)

#: cases tried per parser family (one test module each), calls and unexpected exceptions per parser, and the time
#: each family took, for the long run's report
TRIED: Counter[str] = Counter()
CALLS: Counter[str] = Counter()
FOUND: defaultdict[str, set[str]] = defaultdict(set)
SECONDS: defaultdict[str, float] = defaultdict(float)


def family(module: str) -> str:
    """tests.fuzz.test_sysfs -> sysfs"""
    return module.rsplit(".", 1)[-1].removeprefix("test_")


def fuzz(share: float = 1.0) -> Callable[[F], F]:
    """The settings of one fuzz test (put above @given): `share` of its parser family's budget. Each case it runs
    is counted for the report."""

    def decorate(test: F) -> F:
        inner = test.hypothesis.inner_test  # type: ignore[attr-defined]  # hypothesis lets this be replaced
        name = family(test.__module__)

        @functools.wraps(inner)
        def counted(*args: Any, **kwargs: Any) -> Any:
            TRIED[name] += 1
            return inner(*args, **kwargs)

        test.hypothesis.inner_test = counted  # type: ignore[attr-defined]
        chosen = settings(settings.get_profile(PROFILE), max_examples=max(1, round(EXAMPLES * share)))
        return chosen(test) if SEED is None else seed(SEED)(chosen(test))

    return decorate


def _where(exc: BaseException) -> str:
    frames = traceback.extract_tb(exc.__traceback__)
    ours = [f for f in frames if "/devmig/" in f.filename] or frames
    last = ours[-1] if ours else None
    return f"{last.filename.rsplit('/src/', 1)[-1]}:{last.lineno}" if last else "?"


def outcome(parser: str, call: Callable[[], T]) -> T | DevmigError:
    """Run one parser on one case: its result, or the DevmigError it raised (which must carry a message). Anything
    else is recorded for the report and raised again, so hypothesis shrinks it to the smallest input."""
    CALLS[parser] += 1
    try:
        return call()
    except DevmigError as exc:
        assert str(exc).strip(), f"{type(exc).__name__} raised with an empty message"
        return exc
    except Exception as exc:  # not BaseException: hypothesis stops a case with one, and so does Ctrl-C
        FOUND[parser].add(f"{type(exc).__name__} at {_where(exc)}")
        raise


def write_report(path: str | os.PathLike[str]) -> None:
    """The figures of this run, for scripts/fuzz, added to what earlier runs wrote to the same file."""
    target = Path(path)
    data: dict[str, dict[str, Any]] = json.loads(target.read_text()) if target.exists() else {}
    families, parsers = data.setdefault("families", {}), data.setdefault("parsers", {})
    for name in sorted(set(TRIED) | set(SECONDS)):
        entry = families.setdefault(name, {"cases": 0, "seconds": 0.0})
        entry["cases"] += TRIED[name]
        entry["seconds"] = round(entry["seconds"] + SECONDS[name], 2)
    for name in sorted(set(CALLS) | set(FOUND)):
        entry = parsers.setdefault(name, {"calls": 0, "unexpected": []})
        entry["calls"] += CALLS[name]
        entry["unexpected"] = sorted(set(entry["unexpected"]) | FOUND[name])
    target.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")


def render_report(data: dict[str, dict[str, Any]], wall: float | None = None) -> str:
    """The figures as scripts/fuzz prints them: cases and time per family, calls and surprises per parser."""
    lines = [f"{'family':<16}{'cases':>10}{'seconds':>10}{'cases/s':>10}"]
    families = data.get("families", {})
    for name, entry in sorted(families.items()):
        rate = entry["cases"] / entry["seconds"] if entry["seconds"] else 0.0
        lines.append(f"{name:<16}{entry['cases']:>10}{entry['seconds']:>10.1f}{rate:>10.0f}")
    total_cases = sum(e["cases"] for e in families.values())
    total_seconds = sum(e["seconds"] for e in families.values())
    lines.append(f"{'total':<16}{total_cases:>10}{total_seconds:>10.1f}")
    if wall is not None:
        lines.append(f"wall time: {wall:.0f} s")
    lines += ["", f"{'parser':<24}{'calls':>10}  unexpected exceptions"]
    surprises = 0
    for name, entry in sorted(data.get("parsers", {}).items()):
        found = entry["unexpected"]
        surprises += len(found)
        lines.append(f"{name:<24}{entry['calls']:>10}  {len(found)}{': ' + '; '.join(found) if found else ''}")
    lines.append(f"unexpected exceptions: {surprises}")
    return "\n".join(lines)


if __name__ == "__main__":
    import sys

    report = json.loads(Path(sys.argv[1]).read_text())
    print(render_report(report, float(sys.argv[2]) if len(sys.argv) > 2 else None))
