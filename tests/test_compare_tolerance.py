"""The tolerance model on hand-made tensors: what passes, what fails, and why."""

from __future__ import annotations

import math

import pytest
import torch

from pytest_effective_torch.equivalence.compare import pair
from pytest_effective_torch.equivalence.plan import magnitudes, noncontiguous_copy
from pytest_effective_torch.equivalence.tolerance import Tolerance, bounds_for, judge


def verdict(c, r, t, *, dtype=torch.float32, **tol):
    return judge(
        c.to(dtype),
        r.to(dtype),
        t.double(),
        bounds=bounds_for(dtype),
        tolerance=Tolerance(**tol),
        user_defaults=(1e-5, 1.3e-6),
    )


def test_the_automatic_bounds_are_the_written_formula():
    b = bounds_for(torch.float32)
    eps = torch.finfo(torch.float32).eps
    assert b.normwise == pytest.approx(eps ** (2 / 3))
    assert b.elementwise == pytest.approx(eps**0.5)
    # the coarsest dtype wins (a float16 output in a float32 test)
    assert bounds_for(torch.float32, torch.float16).eps == torch.finfo(torch.float16).eps


def test_rounding_passes_and_reports_how_much_of_the_allowance_it_used():
    t = torch.linspace(-3, 3, 100, dtype=torch.float64)
    v = verdict(t.float(), t.float(), t)
    assert v.ok and 0 < v.ratio < 0.1


def test_zeros_fail_however_small_the_truth_is():
    t = torch.linspace(1, 2, 10, dtype=torch.float64) * 1e-30
    v = verdict(torch.zeros(10), t.float(), t)
    assert not v.ok
    assert v.mismatch.count == 10


def test_the_reference_error_term_tolerates_a_candidate_as_inexact_as_the_reference():
    t = torch.linspace(1, 2, 50, dtype=torch.float64)
    noisy = t * (1 + 1e-3 * torch.cos(torch.arange(50.0, dtype=torch.float64)))
    assert verdict(noisy, noisy, t).ok  # the reference itself is that far off
    assert not verdict(noisy, t, t).ok  # but not when the reference is exact


def test_user_tolerances_follow_assert_close():
    t = torch.ones(5, dtype=torch.float64)
    assert verdict(t + 1e-3, t, t, atol=2e-3).ok
    v = verdict(t + 1e-3, t, t, atol=1e-4, rtol=0.0)
    assert not v.ok and v.mismatch.allowed == pytest.approx(1e-4)


def test_non_finite_candidate_where_reference_and_truth_are_finite_fails():
    t = torch.tensor([1.0, 2.0, 3.0], dtype=torch.float64)
    v = verdict(torch.tensor([1.0, math.nan, 3.0]), t.float(), t)
    assert not v.ok and v.mismatch.kind == "non-finite" and v.mismatch.index == (1,)


def test_a_candidate_stabler_than_the_reference_passes_with_a_note():
    t = torch.tensor([1.0, 0.0], dtype=torch.float64)
    v = verdict(t.float(), torch.tensor([math.nan, 0.0]), t)
    assert v.ok
    assert "candidate stabler than reference" in v.notes[0]


def test_where_the_truth_is_infinite_the_candidate_must_agree_with_truth_or_reference():
    t = torch.tensor([math.inf, 1.0], dtype=torch.float64)
    assert verdict(torch.tensor([math.inf, 1.0]), torch.tensor([math.inf, 1.0]), t).ok
    v = verdict(torch.tensor([5.0, 1.0]), torch.tensor([math.inf, 1.0]), t)
    assert not v.ok and v.mismatch.kind == "truth-non-finite"


def test_metadata_is_compared_before_values_and_paths_name_the_leaf():
    leaves, problems = pair({"a": torch.zeros(2, 1)}, {"a": torch.zeros(2)}, "output")
    assert not leaves
    assert problems[0].path == "output['a']"
    assert "shape (2, 1) vs (2,)" in problems[0].lines[0]


def test_magnitudes_are_scaled_to_the_dtype():
    large32, small32 = magnitudes(torch.float32)
    assert 9 * large32 == pytest.approx(1e3)
    assert 9 * small32 == pytest.approx(1e-3)
    large16, _ = magnitudes(torch.float16)
    assert 9 * large16 == pytest.approx(65504**0.25)  # products of a few stay finite


def test_noncontiguous_copies_keep_values_and_gain_stride_and_offset():
    x = torch.arange(6.0).reshape(2, 3)
    y = noncontiguous_copy(x)
    assert torch.equal(x, y) and not y.is_contiguous()
    assert y.stride() == (7, 2) and y.storage_offset() == 1 and y.is_leaf


def test_the_fused_slice_ratio_decides_exactly_as_the_slice_rule():
    from pytest_effective_torch.equivalence.bounds import KAPPA
    from pytest_effective_torch.equivalence.judge import _gradient_bounds
    from pytest_effective_torch.equivalence.slices import Scratch, slice_ratio, slices_ok

    bounds, scratch = _gradient_bounds(bounds_for(torch.float32)), Scratch()
    gen = torch.Generator().manual_seed(0)
    outcomes = set()
    for case in range(300):
        shape = [int(s) for s in torch.randint(1, 30, (2 + case % 2,), generator=gen)]
        t = torch.randn(shape, dtype=torch.float64, generator=gen)
        t[0] *= 1e-6  # a slice far below the tensor's scale
        d = torch.randn(shape, dtype=torch.float64, generator=gen) * float(t.norm()) * 10.0 ** -(3 + case % 6)
        rms = float(t.norm()) / math.sqrt(t.numel())
        unit = torch.linalg.vector_norm(t) * (KAPPA * bounds.eps / math.sqrt(t.numel())) + bounds.floor
        fused = max((float(r) for r in slice_ratio(d, t, unit, bounds, scratch)), default=0.0) <= bounds.normwise**2
        assert fused == slices_ok(d, t, bounds, rms, float(d.norm()), scratch), (case, shape)
        outcomes.add(fused)
    assert outcomes == {True, False}  # both answers were exercised


def test_a_zero_slice_whose_floor_underflows_cannot_hide_a_failing_slice():
    # float64 gradients near 1e-148: the slice floor's square underflows to 0,
    # so an all-zero column gives 0/0 = nan in the fast slice ratio.
    from pytest_effective_torch.equivalence.judge import _gradient_bounds

    t = torch.zeros(4, 4, dtype=torch.float64)
    t[:, 2:] = 1e-148
    c = t.clone()
    c[:, 1] = 1e-161  # wrong where the truth is exactly 0
    for truth, cand in ((t, c), (t.flip(1).contiguous(), c.flip(1).contiguous())):
        verdict = judge(
            cand, truth.clone(), truth, bounds=_gradient_bounds(bounds_for(torch.float64)),
            tolerance=Tolerance(), user_defaults=(1e-7, 1e-7),
        )  # fmt: skip
        assert not verdict.ok
