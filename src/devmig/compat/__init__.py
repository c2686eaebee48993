"""Compatibility decisions: pure functions from plain data to verdicts. No I/O here."""

from devmig.compat.baseline import CONFLICT_CODES, baseline
from devmig.compat.check import check, plan_params
from devmig.compat.plan import write_plan
from devmig.compat.rank import Rank, candidate_rank
from devmig.compat.rules import CODES, RULES

__all__ = [
    "CODES",
    "CONFLICT_CODES",
    "RULES",
    "Rank",
    "baseline",
    "candidate_rank",
    "check",
    "plan_params",
    "write_plan",
]
