"""Adversarial candidates found in review: each passed a default call before its fix.

Real tensors, small shapes; every test asserts the text a user would read.
"""

from __future__ import annotations

import re

import pytest
import torch
import torch.nn.functional as F

from pytest_effective_torch import Args, CheckFailed, assert_same_as_reference


def failure(candidate, reference, inputs, **kwargs) -> str:
    with pytest.raises(CheckFailed) as info:
        assert_same_as_reference(candidate, reference, inputs, **kwargs)
    return str(info.value)


def pair_of_vectors(make):
    return ([make(3), make(3)],)


# --- containers changed in place ---------------------------------------------


def test_a_candidate_that_pops_from_a_list_argument_is_named():
    def candidate(xs):
        xs.pop()
        return xs[0] * 2

    msg = failure(candidate, lambda xs: xs[0] * 2, pair_of_vectors)
    assert "candidate modified input 0 in place (list had 2 items, now 1)" in msg
    assert "mutates=(0,)" in msg


def test_a_candidate_that_appends_to_a_list_argument_is_named():
    def candidate(xs):
        xs.append(xs[0])
        return xs[0] * 2

    msg = failure(candidate, lambda xs: xs[0] * 2, pair_of_vectors)
    assert "candidate modified input 0 in place (list had 2 items, now 3)" in msg


def test_a_candidate_that_replaces_a_tensor_in_a_list_argument_is_named():
    def candidate(xs):
        xs[1] = xs[1] * 1.0  # same values, another tensor: the caller's list changed
        return xs[0] * 2

    msg = failure(candidate, lambda xs: xs[0] * 2, pair_of_vectors)
    assert "candidate modified input 0 in place (input 0[1] was replaced by another object)" in msg


def test_a_candidate_that_changes_a_dict_argument_is_named_by_keyword():
    def candidate(x, *, config):
        config["scale"] = 3
        config["seen"] = True
        return x * 2

    msg = failure(
        candidate, lambda x, *, config: x * 2, lambda make: Args(make(3), config={"scale": 2})
    )
    assert "candidate modified input 'config' in place (dict gained keys ['seen'])" in msg


def test_a_candidate_that_changes_a_number_inside_a_dict_is_named():
    def candidate(x, config):
        config["scale"] = 3
        return x * 2

    msg = failure(candidate, lambda x, config: x * 2, lambda make: (make(3), {"scale": 2}))
    assert "candidate modified input 1 in place (input 1['scale'] was 2, now 3)" in msg


def test_a_declared_container_mutation_is_allowed():
    def both(xs):
        xs.append(xs[0] * 2)
        return xs[0]

    assert_same_as_reference(both, both, pair_of_vectors, mutates=(0,))


# --- parameters named differently --------------------------------------------


class Linear(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.lin = torch.nn.Linear(10, 5)

    def forward(self, x):
        return self.lin(x)


class DetachedWeightWithTemperature(Linear):
    """An extra parameter, and the shared weight detached: its gradient is lost."""

    def __init__(self, reference):
        super().__init__()
        self.lin.load_state_dict(reference.lin.state_dict())
        self.temperature = torch.nn.Parameter(torch.ones(()))

    def forward(self, x):
        return F.linear(x, self.lin.weight.detach(), self.lin.bias) * self.temperature


def test_parameters_both_modules_name_alike_are_compared_even_when_one_has_extra_ones():
    torch.manual_seed(0)
    reference = Linear()
    msg = failure(DetachedWeightWithTemperature(reference), reference, lambda make: (make(4, 10),))
    assert "grad of parameter lin.weight: gradient is None for the candidate but not for the reference" in msg


def test_extra_parameters_are_noted_and_shared_ones_compared():
    torch.manual_seed(0)
    reference = Linear()

    class WithTemperature(DetachedWeightWithTemperature):
        def forward(self, x):
            return self.lin(x) * self.temperature

    report = assert_same_as_reference(WithTemperature(reference), reference, lambda make: (make(4, 10),))
    assert report.parameter_gradients_compared
    assert any("grad of parameter lin.weight" in g for g in report.gradients)
    assert any("parameter gradients not compared for ['temperature']" in note for note in report.notes)


# --- grad mode ------------------------------------------------------------------


def test_a_candidate_wrong_only_on_its_inference_fast_path_is_caught():
    def candidate(x):  # the no-grad fast path reduces over the wrong dimension
        if not torch.is_grad_enabled():
            return torch.softmax(x, 0)
        return torch.softmax(x, -1)

    msg = failure(candidate, lambda x: torch.softmax(x, -1), lambda make: (make(8, 8),))
    assert "trial 1 of 7 (random values)" in msg
    assert "output (candidate under torch.no_grad): shape (8, 8), float32, cpu:" in msg


def test_the_no_grad_run_is_counted_in_the_report():
    report = assert_same_as_reference(torch.tanh, torch.tanh, lambda make: (make(4, 5),))
    assert "output (candidate under torch.no_grad) (trial 1)" in report.outputs


# --- non-finite where the truth is finite ---------------------------------------


def overflowing(make):  # exp overflows float32 above ~88; the float64 truth stays finite
    return (make(8, 16, low=-100, high=100),)


@pytest.mark.parametrize(
    "bad, shown", [(torch.nan, "candidate nan, reference inf"), (-torch.inf, "candidate -inf, reference inf")]
)
def test_where_the_reference_overflows_the_candidate_must_overflow_the_same_way(bad, shown):
    def candidate(x):
        y = torch.exp(x)
        return torch.where(torch.isinf(y), bad, y)

    msg = failure(candidate, torch.exp, overflowing, check_grad=False)
    assert "candidate is non-finite unlike the reference where the truth is finite" in msg
    assert shown in msg


def test_overflowing_like_the_reference_passes_with_a_note():
    report = assert_same_as_reference(lambda x: 1 / torch.exp(-x), torch.exp, overflowing, check_grad=False)
    assert any("both non-finite" in note for note in report.notes)


# --- the gradient noise floor comes from the outputs an input reaches -------------


class ZeroGrad(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x):
        return x.clone()

    @staticmethod
    def backward(ctx, grad):
        return grad * 0


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_a_large_output_does_not_excuse_a_lost_gradient_through_a_small_one(dtype):
    def reference(a, b):
        return a * 100, b * 1

    def candidate(a, b):  # b's gradient is lost; the output that excused it does not depend on b
        return a * 100, ZeroGrad.apply(b)

    def inputs(make):  # explicit domains: the small-magnitude trial scales nothing
        return make(8, 8, low=-1, high=1), make(8, 8, low=-1, high=1)

    msg = failure(candidate, reference, inputs, dtype=dtype)
    assert "trial 1 of 7 (random values)" in msg
    assert "grad of input 1: shape (8, 8)" in msg
    assert "grad of input 0" not in msg


# --- the slice rule: a row or column judged on its own scale -----------------------


def test_a_last_row_off_by_1e_4_relative_fails_although_the_whole_tensor_hides_it():
    def reference(x):
        return torch.tanh(x) * 3

    def candidate(x):
        y = reference(x)
        return torch.cat([y[:-1], y[-1:] * 1.0001])

    msg = failure(candidate, reference, lambda make: (make(64, 100),))
    assert "output: shape (64, 100), float32, cpu:" in msg
    assert "slice [63, :] has normwise relative error 0.0001 vs allowed 2.42e-05 (the whole tensor: 1.25e-05" in msg
    assert "worst at index (63, " in msg


def test_one_matmul_column_10_percent_off_fails_in_bfloat16():
    def candidate(a, b):
        y = a @ b
        return torch.cat([y[:, :-1], y[:, -1:] * 1.1], 1)

    msg = failure(candidate, lambda a, b: a @ b, lambda make: (make(32, 64), make(64, 16)), dtype=torch.bfloat16)
    # Which rule trips first depends on the CPU's bfloat16 matmul rounding
    # (seen on two machines); the column it blames does not.
    assert re.search(r"slice \[:, 15\] has normwise relative error 0\.09\d+|elementwise bound exceeded", msg), msg
    assert "worst at index (" in msg and ", 15): candidate" in msg


def test_columns_far_below_the_tensors_scale_are_judged_on_their_own():
    def reference(x, scale):
        return x * scale

    def candidate(x, scale):  # the columns below 1 are doubled: 1e-6 of the tensor's norm
        return torch.where(scale < 1, 2 * x * scale, x * scale)

    def inputs(make):
        return make(64, 100), torch.logspace(-6, 6, 100, dtype=make.dtype)

    msg = failure(candidate, reference, inputs)
    assert "output: shape (64, 100), float32, cpu:" in msg
    # the elementwise rule's relative demand catches the largest doubled column
    assert re.search(r"elementwise bound exceeded \(normwise relative error \d\.\d+e-07 vs allowed 2\.42e-05", msg)
    assert re.search(r"worst at index \(\d+, 49\)", msg)


# --- module state ---------------------------------------------------------------------


class BatchNormForgettingItsStatistics(torch.nn.BatchNorm1d):
    def forward(self, x):  # right in training mode, but never updates the running statistics
        mean, var = x.mean(0), x.var(0, unbiased=False)
        return (x - mean) / torch.sqrt(var + self.eps) * self.weight + self.bias


class BatchNormRewritten(torch.nn.BatchNorm1d):
    def forward(self, x):
        mean, var = x.mean(0), x.var(0, unbiased=False)
        with torch.no_grad():
            self.num_batches_tracked += 1
            self.running_mean.lerp_(mean, self.momentum)
            self.running_var.lerp_(x.var(0, unbiased=True), self.momentum)
        return (x - mean) / torch.sqrt(var + self.eps) * self.weight + self.bias


def test_buffers_the_call_changes_are_compared_like_outputs():
    msg = failure(BatchNormForgettingItsStatistics(8), torch.nn.BatchNorm1d(8), lambda make: (make(16, 8),))
    assert "buffer running_mean after the call: shape (8,), float32, cpu:" in msg
    assert "buffer num_batches_tracked after the call: shape (), int64, cpu: 1 of 1 elements differ" in msg


def test_a_module_that_updates_its_statistics_like_the_reference_passes():
    report = assert_same_as_reference(BatchNormRewritten(8), torch.nn.BatchNorm1d(8), lambda make: (make(16, 8),))
    assert "buffer running_var after the call (trial 6)" in report.outputs


def forces(x):  # needs autograd inside: -dE/dx of E = sum(x**4) / 4
    energy = (x**4).sum() / 4
    return -torch.autograd.grad(energy, x, create_graph=True)[0]


def test_code_that_needs_autograd_inside_is_not_failed_when_the_reference_needs_it_too():
    report = assert_same_as_reference(forces, forces, lambda make: (make(4, 3),))
    assert "no check under torch.no_grad: the candidate and the reference both raise there" in report.notes


def test_a_candidate_that_alone_breaks_under_no_grad_is_a_crash_with_that_context():
    with pytest.raises(RuntimeError) as info:
        assert_same_as_reference(forces, lambda x: -(x**3), lambda make: (make(4, 3),))
    context = "\n".join(getattr(info.value, "__notes__", [])) + str(info.value.__cause__ or "")
    assert "while running the candidate under torch.no_grad in trial 1 of 7" in context
