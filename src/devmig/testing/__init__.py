"""Helpers for tests of devmig and of code that uses it: sysfs trees in the kernel's layout, faults, a throwaway
PostgreSQL, and CI strictness (a missing prerequisite fails in CI)."""
