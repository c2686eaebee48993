"""The VFIO migration state machine table against the kernel's documented paths and rules."""

from __future__ import annotations

import errno
import itertools

import pytest
from hypothesis import given
from hypothesis import strategies as st

from devmig.errors import DevmigError
from devmig.migrate import fsm, uapi
from devmig.migrate.fsm import (
    ENDS_SESSION,
    ERROR,
    NEXT,
    OPENS_DATA_FD,
    PRE_COPY,
    PRE_COPY_P2P,
    RESUMING,
    RUNNING,
    RUNNING_P2P,
    SAVING_GROUP,
    STATE_FLAGS,
    STOP,
    STOP_COPY,
    TransitionError,
    next_step,
    path,
)
from devmig.migrate.uapi import MIGRATION_FLAGS, MigState

FLAG_SETS = (1, 3, 5, 7)
STATES = list(MigState)


def names(states: list[MigState]) -> str:
    return " -> ".join(s.name for s in states)


def walk(text: str, flags: int) -> str:
    states = [MigState[name] for name in text.split(" -> ")]
    return names(path(states[0], states[-1], flags))


#: The combination transitions listed in vfio_mig_get_next_state()'s comment, with every optional feature.
KERNEL_COMBINATIONS_FLAGS_7 = """
PRE_COPY -> PRE_COPY_P2P -> STOP_COPY
PRE_COPY -> RUNNING -> RUNNING_P2P
PRE_COPY -> RUNNING -> RUNNING_P2P -> STOP
PRE_COPY -> RUNNING -> RUNNING_P2P -> STOP -> RESUMING
PRE_COPY_P2P -> RUNNING_P2P -> RUNNING
PRE_COPY_P2P -> RUNNING_P2P -> STOP
PRE_COPY_P2P -> RUNNING_P2P -> STOP -> RESUMING
RESUMING -> STOP -> RUNNING_P2P
RESUMING -> STOP -> RUNNING_P2P -> PRE_COPY_P2P
RESUMING -> STOP -> RUNNING_P2P -> RUNNING
RESUMING -> STOP -> RUNNING_P2P -> RUNNING -> PRE_COPY
RESUMING -> STOP -> STOP_COPY
RUNNING -> RUNNING_P2P -> PRE_COPY_P2P
RUNNING -> RUNNING_P2P -> STOP
RUNNING -> RUNNING_P2P -> STOP -> RESUMING
RUNNING -> RUNNING_P2P -> STOP -> STOP_COPY
RUNNING_P2P -> RUNNING -> PRE_COPY
RUNNING_P2P -> STOP -> RESUMING
RUNNING_P2P -> STOP -> STOP_COPY
STOP -> RUNNING_P2P -> PRE_COPY_P2P
STOP -> RUNNING_P2P -> RUNNING
STOP -> RUNNING_P2P -> RUNNING -> PRE_COPY
STOP_COPY -> STOP -> RESUMING
STOP_COPY -> STOP -> RUNNING_P2P
STOP_COPY -> STOP -> RUNNING_P2P -> RUNNING
""".strip().splitlines()


@pytest.mark.parametrize("documented", KERNEL_COMBINATIONS_FLAGS_7)
def test_the_kernels_documented_combinations_with_every_feature(documented: str) -> None:
    assert walk(documented, 7) == documented


def test_every_other_supported_pair_is_a_single_arc_with_every_feature() -> None:
    multi = {(line.split(" -> ")[0], line.split(" -> ")[-1]) for line in KERNEL_COMBINATIONS_FLAGS_7}
    for cur, target in itertools.product(STATES[1:], repeat=2):
        if (
            cur == target
            or (cur.name, target.name) in multi
            or (cur, target)
            in {
                (STOP_COPY, PRE_COPY),
                (STOP_COPY, PRE_COPY_P2P),
            }
        ):
            continue
        assert path(cur, target, 7) == [cur, target], (cur.name, target.name)


@pytest.mark.parametrize(
    ("flags", "documented"),
    [
        # STOP_COPY only: RUNNING -> STOP, then STOP_COPY or RESUMING
        (1, "RUNNING -> STOP"),
        (1, "RUNNING -> STOP -> STOP_COPY"),
        (1, "RUNNING -> STOP -> RESUMING"),
        (1, "STOP_COPY -> STOP -> RUNNING"),
        (1, "RESUMING -> STOP -> RUNNING"),
        # P2P: RUNNING -> RUNNING_P2P -> STOP -> ...
        (3, "RUNNING -> RUNNING_P2P -> STOP"),
        (3, "RUNNING -> RUNNING_P2P -> STOP -> STOP_COPY"),
        (3, "RESUMING -> STOP -> RUNNING_P2P -> RUNNING"),
        # PRE_COPY without P2P: PRE_COPY -> STOP_COPY directly; PRE_COPY -> RUNNING -> STOP
        (5, "RUNNING -> PRE_COPY"),
        (5, "PRE_COPY -> STOP_COPY"),
        (5, "PRE_COPY -> RUNNING -> STOP"),
        (5, "PRE_COPY -> RUNNING -> STOP -> RESUMING"),
        (5, "STOP -> RUNNING -> PRE_COPY"),
        # everything: PRE_COPY -> PRE_COPY_P2P -> STOP_COPY
        (7, "RUNNING -> PRE_COPY"),
        (7, "PRE_COPY -> PRE_COPY_P2P -> STOP_COPY"),
    ],
)
def test_documented_paths_per_flag_set(flags: int, documented: str) -> None:
    assert walk(documented, flags) == documented


@pytest.mark.parametrize("flags", FLAG_SETS)
@pytest.mark.parametrize("target", [PRE_COPY, PRE_COPY_P2P])
def test_stop_copy_cannot_go_back_to_pre_copy(flags: int, target: MigState) -> None:
    with pytest.raises(TransitionError) as err:
        path(STOP_COPY, target, flags)
    assert err.value.errno == errno.EINVAL and isinstance(err.value, DevmigError)
    assert "STOP_COPY -> PRE_COPY" in str(err.value)


@pytest.mark.parametrize("flags", [0, *FLAG_SETS])
@pytest.mark.parametrize("cur", STATES)
def test_error_is_never_a_target(flags: int, cur: MigState) -> None:
    with pytest.raises(TransitionError, match=r"ERROR cannot be requested|current state is not supported"):
        next_step(cur, ERROR, flags)


@pytest.mark.parametrize("target", STATES)
def test_nothing_leaves_error(target: MigState) -> None:
    with pytest.raises(TransitionError, match="current state is not supported"):
        next_step(ERROR, target, 7)


def test_optional_states_are_refused_without_their_flag() -> None:
    with pytest.raises(TransitionError, match="target state is not supported"):
        path(RUNNING, RUNNING_P2P, 1)
    with pytest.raises(TransitionError, match="target state is not supported"):
        path(RUNNING, PRE_COPY, 3)
    with pytest.raises(TransitionError, match="target state is not supported"):
        path(RUNNING, PRE_COPY_P2P, 5)
    with pytest.raises(TransitionError, match="current state is not supported"):
        path(RUNNING_P2P, STOP, 1)
    with pytest.raises(TransitionError, match="current state is not supported"):
        path(RUNNING, STOP, 0)


def test_out_of_range_states_are_einval() -> None:
    with pytest.raises(TransitionError, match="8 is not a VFIO migration state"):
        next_step(RUNNING, 8, 7)
    with pytest.raises(TransitionError, match="-1 is not a VFIO migration state"):
        path(-1, RUNNING, 7)


def test_the_tables_match_the_kernel_and_the_bindings() -> None:
    assert [int(s) for s in STATES] == list(range(8))
    assert [STATE_FLAGS[s] for s in (STOP, RUNNING, STOP_COPY, RESUMING, RUNNING_P2P, PRE_COPY, PRE_COPY_P2P)] == [
        1,
        1,
        1,
        1,
        3,
        5,
        7,
    ]
    assert not any(fsm.supported(ERROR, flags) for flags in range(1 << 16))
    assert MIGRATION_FLAGS == {
        uapi.VFIO_MIGRATION_STOP_COPY: "STOP_COPY",
        uapi.VFIO_MIGRATION_P2P: "P2P",
        uapi.VFIO_MIGRATION_PRE_COPY: "PRE_COPY",
    }
    assert all(NEXT[s][s] == s for s in STATES)
    assert all(NEXT[ERROR][t] == ERROR for t in STATES)
    assert {(c, t) for c in STATES for t in STATES if NEXT[c][t] == ERROR and ERROR not in (c, t)} == {
        (STOP_COPY, PRE_COPY),
        (STOP_COPY, PRE_COPY_P2P),
    }


def all_requests() -> list[tuple[MigState, MigState, int]]:
    return [(c, t, f) for f in FLAG_SETS for c in STATES for t in STATES]


def test_every_request_ends_or_is_refused_and_never_crosses_the_saving_group() -> None:
    walked = 0
    for cur, target, flags in all_requests():
        if cur == target:
            continue
        try:
            states = path(cur, target, flags)
        except TransitionError:
            continue
        walked += 1
        assert states[0] == cur and states[-1] == target
        assert len(set(states)) == len(states), names(states)  # no loop
        assert not SAVING_GROUP & set(states[1:-1]) or names(states) == "PRE_COPY -> PRE_COPY_P2P -> STOP_COPY"
        assert all(fsm.supported(s, flags) for s in states[1:]), (flags, names(states))
    # n * (n - 1) ordered pairs of the n supported states, less STOP_COPY -> PRE_COPY and -> PRE_COPY_P2P
    assert walked == 4 * 3 + 5 * 4 + (5 * 4 - 1) + (7 * 6 - 2)


@pytest.mark.parametrize("flags", [0, *FLAG_SETS])
@pytest.mark.parametrize("state", STATES)
def test_asking_for_the_current_state_walks_nothing(flags: int, state: MigState) -> None:
    """The driver's loop `while (cur != new)` does not run, so the kernel is never asked (even for ERROR)."""
    assert path(state, state, flags) == [state]


def test_a_saving_state_is_only_crossed_inside_the_saving_group() -> None:
    """The header's rule: a saving-group state appears only at the start or end of a path; the one exception is
    PRE_COPY -> PRE_COPY_P2P -> STOP_COPY, which stays inside the group (one session)."""
    for cur, target, flags in all_requests():
        try:
            states = path(cur, target, flags)
        except TransitionError:
            continue
        for middle in states[1:-1]:
            if middle in SAVING_GROUP:
                assert states[0] in SAVING_GROUP and states[-1] in SAVING_GROUP


def test_sessions_open_and_end_on_the_documented_arcs() -> None:
    arcs: set[tuple[MigState, MigState]] = set()
    for cur, target, flags in all_requests():
        try:
            states = path(cur, target, flags)
        except TransitionError:
            continue
        steps = list(itertools.pairwise(states))
        arcs.update(steps)
        for index, (a, b) in enumerate(steps):
            opens = (a not in SAVING_GROUP and b in SAVING_GROUP) or (a, b) == (STOP, RESUMING)
            ends = (a in SAVING_GROUP and b not in SAVING_GROUP) or (a, b) == (RESUMING, STOP)
            assert ((a, b) in OPENS_DATA_FD) == opens and ((a, b) in ENDS_SESSION) == ends, (a.name, b.name)
            if opens:  # drivers return a file only on the final arc
                assert index == len(steps) - 1, names(states)
    assert arcs >= OPENS_DATA_FD | ENDS_SESSION


def test_what_each_request_does_to_the_data_fd() -> None:
    """Every (state, target, flags): a new fd exactly when the target is a session state the current one is not in
    the same session as; the fd kept exactly inside one session; none otherwise."""
    answers: dict[str, int] = {"new": 0, "kept": 0, "none": 0}
    for cur, target, flags in all_requests():
        try:
            effect = fsm.data_fd(cur, target, flags)
        except TransitionError:
            continue
        answers[effect] += 1
        same_session = (cur in SAVING_GROUP and target in SAVING_GROUP) or cur == target == RESUMING
        if same_session:
            assert effect == "kept", (cur.name, target.name, flags)
        elif target in SAVING_GROUP or target is RESUMING:
            assert effect == "new", (cur.name, target.name, flags)
        else:
            assert effect == "none", (cur.name, target.name, flags)
    assert fsm.data_fd(PRE_COPY, STOP_COPY, 5) == fsm.data_fd(PRE_COPY, STOP_COPY, 7) == "kept"
    assert fsm.data_fd(STOP_COPY, STOP_COPY, 1) == "kept" and fsm.data_fd(STOP_COPY, RESUMING, 1) == "new"
    assert answers == {"new": 42, "kept": 21, "none": 60}  # of the 123 requests the kernel takes


flag_values = st.sampled_from([0, 1, 2, 3, 4, 5, 6, 7]) | st.integers(0, 2**32 - 1)
state_values = st.sampled_from(STATES)


@given(state_values, state_values, flag_values)
def test_next_step_is_one_table_lookup_or_a_skip(cur: MigState, target: MigState, flags: int) -> None:
    try:
        step = next_step(cur, target, flags)
    except TransitionError as err:
        assert err.errno == errno.EINVAL
        assert not fsm.supported(cur, flags) or not fsm.supported(target, flags) or NEXT[cur][target] == ERROR
        return
    assert fsm.supported(step, flags) and step != ERROR
    assert step == NEXT[cur][target] or not fsm.supported(NEXT[cur][target], flags)
    if cur == target:
        assert step == cur


@given(state_values, state_values, flag_values)
def test_paths_are_short_supported_and_compose(cur: MigState, target: MigState, flags: int) -> None:
    try:
        states = path(cur, target, flags)
    except TransitionError:
        return
    assert len(states) <= 5 and states[-1] == target
    # every suffix of a path is the path from its first state: the walk has no memory
    for index, state in enumerate(states):
        assert path(state, target, flags) == states[index:]


@given(flag_values)
def test_a_migration_round_trip_is_always_possible_on_a_migratable_device(flags: int) -> None:
    if not flags & uapi.VFIO_MIGRATION_STOP_COPY:
        with pytest.raises(TransitionError):
            path(RUNNING, STOP_COPY, flags)
        return
    assert path(RUNNING, STOP_COPY, flags)[-1] == STOP_COPY
    assert path(STOP_COPY, RUNNING, flags)[-1] == RUNNING
    assert path(RUNNING, RESUMING, flags)[-1] == RESUMING
    assert path(RESUMING, RUNNING, flags)[-1] == RUNNING
