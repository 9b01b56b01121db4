"""assert_same_as_reference(..., sizes=...): every point checked, failures bisected to their boundary."""

from __future__ import annotations

import math
import re
import sys

import pytest
import torch

from pytest_effective_torch import (
    CheckFailed,
    EquivalenceSweepReport,
    assert_same_as_reference,
    edge_sizes,
)

BLOCK = 16


def row_sum(x):
    return x.sum(-1)


def drops_last_partial_tile(x):
    """A tiled sum that forgets the last partial tile once there is more than one tile."""
    n = x.shape[-1]
    full = n // BLOCK
    if full <= 1:
        return x.sum(-1)
    return x[..., : full * BLOCK].sum(-1)


def rows(make, *, n):
    return (make(4, n),)


def grid(make, *, m, n):
    return (make(m, n),)


def wrong_above(limit):
    def candidate(x):
        return x.sum(-1) * (1.5 if x.shape[-1] > limit else 1.0)

    return candidate


def failure(candidate, inputs, sizes, **kwargs) -> str:
    with pytest.raises(CheckFailed) as info:
        assert_same_as_reference(candidate, row_sum, inputs, sizes=sizes, **kwargs)
    return str(info.value)


def steps_of(message: str) -> list[str]:
    found = re.findall(r"per step: ([^)]*)\)", message)
    return [step for line in found for step in line.split(", ")]


# --- the example ------------------------------------------------------------------


def test_a_dropped_partial_tile_is_found_and_bisected_to_n_64_passes_n_65_fails():
    message = failure(drops_last_partial_tile, rows, {"n": [1, 16, 64, 100]})
    lines = message.splitlines()
    assert lines[0] == (
        "candidate differs from reference at 1 of 4 sizes of n=[1, 16, 64, 100]: n=100 "
        "(passed: n=1, n=16, n=64)"
    )
    assert lines[1].startswith("pass-to-fail boundary below n=100: n=64 passes, n=65 fails (bisected over n")
    # log2(100 - 64) rounded up: at most 6 one-trial checks
    assert 1 <= len(steps_of(message)) <= math.ceil(math.log2(36))
    assert "at n=100: candidate differs from reference: 2 problems in trial 1 of 2 (random values)" in message
    assert lines[-1].startswith("rerun: assert_same_as_reference(") and "sizes={'n': [1, 16, 64, 100]}" in lines[-1]


def test_the_same_candidate_passes_at_multiples_of_the_block():
    report = assert_same_as_reference(drops_last_partial_tile, row_sum, rows, sizes={"n": [1, 16, 32, 64]})
    assert isinstance(report, EquivalenceSweepReport)
    assert list(report.points) == ["n=1", "n=16", "n=32", "n=64"]


def test_edge_sizes_find_the_bug_without_knowing_where_it_is():
    message = failure(drops_last_partial_tile, rows, {"n": edge_sizes(BLOCK, 64)})
    assert "at 4 of 12 sizes" in message
    # each failing size has the boundary right below it, from the sweep itself
    for low, high in ((32, 33), (48, 49)):
        assert f"n={low} passes, n={high} fails (adjacent sizes of the sweep)" in message
    assert "n=16 passes, n=17 fails" not in message  # one tile, partial or not, is summed right


# --- every failing point, its own boundary ----------------------------------------------


def test_every_failing_point_is_reported_with_the_boundary_below_it():
    def wrong_at_multiples_of_ten(x):
        return x.sum(-1) * (2 if x.shape[-1] % 10 == 0 else 1)

    message = failure(wrong_at_multiples_of_ten, rows, {"n": [1, 16, 20, 32, 40]})
    assert "at 2 of 5 sizes of n=[1, 16, 20, 32, 40]: n=20, n=40 (passed: n=1, n=16, n=32)" in message
    assert "pass-to-fail boundary below n=20: n=19 passes, n=20 fails" in message
    assert "pass-to-fail boundary below n=40: n=39 passes, n=40 fails" in message
    assert "\nat n=20: candidate differs" in message and "\nat n=40: candidate differs" in message


def test_consecutive_failing_points_share_one_bisection():
    message = failure(wrong_above(40), rows, {"n": [8, 32, 64, 128]})
    assert "pass-to-fail boundary below n=64, n=128: n=40 passes, n=41 fails" in message
    assert message.count("pass-to-fail boundary") == 1
    assert len(steps_of(message)) <= math.ceil(math.log2(64 - 32))


def test_a_sweep_failing_everywhere_says_there_is_no_passing_size_to_bisect_from():
    message = failure(wrong_above(0), rows, {"n": [1, 8]})
    assert "(no size passed)" in message
    assert "no pass-to-fail boundary below n=1, n=8: no smaller size of the sweep passed" in message


# --- grids: only the failing key is bisected ---------------------------------------------


def test_a_grid_bisects_the_key_that_failed_and_holds_the_others():
    message = failure(wrong_above(20), grid, {"m": [2, 3], "n": [16, 32]})
    assert "pass-to-fail boundary below m=2,n=32: m=2,n=20 passes, m=2,n=21 fails" in message
    assert "pass-to-fail boundary below m=3,n=32: m=3,n=20 passes, m=3,n=21 fails" in message
    for step in steps_of(message):
        assert step.startswith(("m=2,n=", "m=3,n="))


def test_a_grid_bisects_the_other_key_when_that_one_failed():
    def wrong_with_many_rows(x):
        return x.sum(-1) * (1.5 if x.shape[0] > 2 else 1.0)

    message = failure(wrong_with_many_rows, grid, {"m": [2, 6], "n": [4, 8]})
    assert "pass-to-fail boundary below m=6,n=4: m=2,n=4 passes, m=3,n=4 fails" in message
    assert "pass-to-fail boundary below m=6,n=8: m=2,n=8 passes, m=3,n=8 fails" in message


# --- the kind of trial that failed is the one bisected -----------------------------------


def test_a_failure_in_the_layout_trial_is_bisected_with_layout_trials():
    def wrong_when_strided_and_long(x):
        if not x.is_contiguous() and x.shape[-1] > 40:
            return x.sum(-1) * 2
        return x.sum(-1)

    # the layout trial comes to the fourth point (layout, large, small in turn)
    message = failure(wrong_when_strided_and_long, rows, {"n": [8, 16, 32, 64]})
    assert "pass-to-fail boundary below n=64: n=40 passes, n=41 fails (bisected over n, one non-contiguous layout trial per step" in message
    assert "trial 2 of 2 (non-contiguous layout)" in message


# --- crashes ---------------------------------------------------------------------------


def test_a_bisection_step_that_crashes_is_reported_as_a_crash():
    def crashes_in_between(x):
        n = x.shape[-1]
        if 64 < n < 100:
            raise IndexError(f"tile index {n} out of range")
        return x.sum(-1) * (2 if n >= 100 else 1)

    message = failure(crashes_in_between, rows, {"n": [16, 64, 100]})
    assert (
        "pass-to-fail boundary below n=100: between n=64 (passes) and n=100 (fails); bisection stopped "
        "at n=82, which crashed: IndexError: tile index 82 out of range (while running the candidate)"
    ) in message


def test_a_crash_at_a_swept_size_is_an_error_that_names_the_size():
    def crashes_at_64(x):
        if x.shape[-1] == 64:
            raise RuntimeError("kernel launch failed")
        return x.sum(-1)

    with pytest.raises(RuntimeError, match="kernel launch failed") as info:
        assert_same_as_reference(crashes_at_64, row_sum, rows, sizes={"n": [16, 64, 100]})
    if sys.version_info >= (3, 11):
        notes = "\n".join(info.value.__notes__)
        assert "effective-torch: at size n=64 of the sweep n=[16, 64, 100] (before it: n=16 passed)" in notes
        assert "while running the candidate in trial 1 of 2" in notes


# --- what a passing sweep ran, and what it costs ---------------------------------------


def test_each_point_runs_one_random_trial_and_one_other_in_turn():
    report = assert_same_as_reference(row_sum, row_sum, rows, sizes={"n": [1, 2, 3, 4]})
    assert [r.kinds for r in report.points.values()] == [
        ["random", "layout"], ["random", "large"], ["random", "small"], ["random", "layout"],
    ]  # fmt: skip
    text = str(report)
    assert text.startswith("4 sizes of n=[1, 2, 3, 4], 2 trials each (1 random + layout, large, small in turn); all pass")


def test_trials_sets_the_random_trials_of_each_point():
    report = assert_same_as_reference(row_sum, row_sum, rows, sizes={"n": [3, 5]}, trials=2)
    assert [r.kinds for r in report.points.values()] == [["random", "random", "layout"], ["random", "random", "large"]]


def test_a_sweep_of_ten_sizes_calls_the_candidate_under_half_as_often_as_ten_default_checks():
    calls = []

    def counted(x):
        calls.append(x.shape[-1])
        return x.sum(-1)

    sizes = [1, 2, 3, 5, 8, 13, 21, 34, 55, 89]
    assert_same_as_reference(counted, row_sum, rows, sizes={"n": sizes})
    swept = len(calls)
    calls.clear()
    for n in sizes:
        assert_same_as_reference(counted, row_sum, lambda make, n=n: (make(4, n),))
    assert swept == 30  # per size: 2 trials and the extra call under torch.no_grad
    assert swept <= len(calls) / 2


def test_a_swept_size_draws_the_same_inputs_every_run():
    seen: list[list[torch.Tensor]] = [[], []]

    def recording(run):
        def candidate(x):
            seen[run].append(x.detach().clone())
            return x.sum(-1)

        return candidate

    for run in (0, 1):
        assert_same_as_reference(recording(run), row_sum, rows, sizes={"n": [3, 7]}, seed=5)
    assert all(torch.equal(a, b) for a, b in zip(*seen, strict=True))


def test_the_rerun_line_reproduces_the_same_failure():
    message = failure(drops_last_partial_tile, rows, {"n": [1, 16, 64, 100]}, seed=7)
    assert message.splitlines()[-1] == (
        "rerun: assert_same_as_reference(candidate, reference, inputs, device='cpu', "
        "dtype=torch.float32, seed=7, sizes={'n': [1, 16, 64, 100]})"
    )
    again = failure(drops_last_partial_tile, rows, {"n": [1, 16, 64, 100]}, device="cpu", dtype=torch.float32, seed=7)
    assert again == message
