"""A zoo of deliberately broken candidates: each must be caught, with a message that says why.

Real tensors, small shapes, fixed seeds; the reference is always the obvious
version. Every test asserts the message text a user would read.
"""

from __future__ import annotations

import re

import pytest
import torch
import torch.nn.functional as F
from _broken import BadSquare
from _crash import crash

from pytest_effective_torch import CheckFailed, assert_same_as_reference


def failure(candidate, reference, inputs, **kwargs) -> str:
    with pytest.raises(CheckFailed) as info:
        assert_same_as_reference(candidate, reference, inputs, **kwargs)
    return str(info.value)


def rows(make):
    return (make(6, 10),)


# --- values -----------------------------------------------------------------


def test_wrong_values_on_some_inputs_are_caught_with_the_worst_element():
    def candidate(x):  # wrong only below -8 (about 5% of the default range)
        return torch.where(x > -8, x.abs(), x)

    msg = failure(candidate, torch.abs, rows)
    assert "trial 1 of 7 (random values)" in msg
    assert re.search(r"output: shape \(6, 10\), float32, cpu: \d+ of 60 elements differ", msg)
    assert re.search(r"worst at index \(\d+, \d+\): candidate -8\.\d+, reference 8\.\d+, truth 8\.\d+", msg)
    assert "error " in msg and " vs allowed " in msg


def test_a_candidate_that_caches_its_first_result_fails_on_the_second_trial():
    cache: dict[str, torch.Tensor] = {}

    def candidate(x):
        if "y" not in cache:
            cache["y"] = torch.tanh(x)
        return cache["y"]

    msg = failure(candidate, torch.tanh, rows)
    assert "trial 2 of 7 (random values)" in msg
    assert "; 1 earlier trial passed" in msg


def test_an_extra_size_one_dimension_is_a_shape_mismatch_not_broadcast_away():
    msg = failure(lambda x: x.sum(1, keepdim=True), lambda x: x.sum(1), rows)
    assert "output: candidate shape (6, 1) vs (6,) (candidate vs reference)" in msg
    assert "broadcasting" in msg


def test_the_guides_ugly_broadcast_sum_is_caught_by_its_shape():
    # a [N, 1] + b [N] silently builds [N, N]; the fix reduces over dim 0.
    def candidate(a, b):
        return torch.sum(a + b, 0)

    def reference(a, b):
        return a[:, 0] + b

    msg = failure(candidate, reference, lambda make: (make(4, 1), make(4)))
    assert "output: candidate shape (4,) vs (4,)" not in msg
    # the shapes agree, (4,) both: the [N, N] detour shows in the values
    assert "output: shape (4,), float32, cpu: 4 of 4 elements differ" in msg


def test_a_wrong_output_dtype_is_reported():
    msg = failure(lambda x: x.double() * 2, lambda x: x * 2, rows)
    assert "dtype torch.float64 vs torch.float32" in msg


def test_zeros_never_pass_however_small_the_true_outputs_are():
    def inputs(make):
        return (make(50, low=-1e-6, high=1e-6),)

    reference = lambda x: x * x  # noqa: E731
    x = inputs(lambda *s, **k: torch.empty(s).uniform_(-1e-6, 1e-6))[0]
    # The known hole: assert_close's absolute tolerance exceeds the outputs.
    torch.testing.assert_close(torch.zeros_like(x), reference(x))
    msg = failure(lambda x: torch.zeros_like(x), reference, inputs)
    assert re.search(r"output: shape \(50,\), float32, cpu: \d+ of 50 elements differ", msg)
    assert "candidate 0, reference" in msg


def test_returning_the_input_never_passes_for_tiny_outputs():
    def inputs(make):
        return (make(20, low=-1e-3, high=1e-3),)

    msg = failure(lambda x: x, lambda x: x**3, inputs, check_grad=False)
    assert "elements differ" in msg


def test_a_candidate_that_returns_zeros_when_outputs_are_tiny_fails_in_the_small_magnitude_trial():
    def candidate(x):
        y = torch.sin(x)
        return torch.zeros_like(y) if bool(y.abs().max() < 1e-2) else y

    msg = failure(candidate, torch.sin, rows)
    assert "(small magnitude)" in msg
    assert "inputs scaled x0.000111" in msg


# --- precision ---------------------------------------------------------------


def mm_inputs(make):
    return (make(16, 256), make(256, 8))


def test_float16_inside_a_float32_test_fails_on_precision():
    def candidate(a, b):
        return (a.half() @ b.half()).float()

    msg = failure(candidate, torch.matmul, mm_inputs, check_grad=False)
    assert "elements differ" in msg
    m = re.search(r"normwise relative error ([0-9.e-]+) vs allowed ([0-9.e-]+)", msg)
    assert m and float(m.group(1)) > 10 * float(m.group(2))


def test_float32_inside_a_float64_test_fails():
    def candidate(a, b):
        return (a.float() @ b.float()).double()

    msg = failure(candidate, torch.matmul, mm_inputs, dtype=torch.float64, check_grad=False)
    assert "float64" in msg
    assert "normwise relative error" in msg


# --- gradients ---------------------------------------------------------------


def test_a_wrong_backward_is_caught_as_a_gradient_mismatch():
    msg = failure(BadSquare.apply, lambda x: x * x, rows)
    assert "grad of input 0: shape (6, 10), float32, cpu:" in msg
    assert "output:" not in msg  # the forward is right


def test_a_gradient_that_is_none_on_one_side_only_names_the_input():
    def candidate(x, w):
        return x * w.detach()

    msg = failure(candidate, lambda x, w: x * w, lambda make: (make(3, 4), make(3, 4)))
    assert "grad of input 1: gradient is None for the candidate but not for the reference" in msg
    assert "grad of input 0" not in msg


def test_every_failing_output_and_gradient_is_listed_in_one_message():
    def reference(x):
        return x.exp(), {"logits": x * 2, "same": x + 1}

    def candidate(x):
        return x.exp() * 1.01, {"logits": x * 2.02, "same": x + 1}

    msg = failure(candidate, reference, rows)
    assert "output[0]:" in msg
    assert "output[1]['logits']:" in msg
    assert "output[1]['same']" not in msg
    assert "grad of input 0" in msg
    assert msg.startswith("candidate differs from reference: 3 problems in trial 1 of 7")


# --- layout -----------------------------------------------------------------


def test_a_candidate_that_assumes_contiguous_memory_fails_in_the_layout_trial():
    def candidate(x):  # reads the storage as if the tensor were contiguous
        flat = x.as_strided((x.numel(),), (1,))
        return (flat * 2).view(x.shape)

    msg = failure(candidate, lambda x: x * 2, rows)
    assert "(non-contiguous layout)" in msg
    assert "layout non-contiguous (strided, offset)" in msg
    assert "strides (21, 2), offset 1" in msg


class Sigmoid(torch.autograd.Function):
    """torch.sigmoid's forward, saving its output; the subclasses write the backward."""

    @staticmethod
    def forward(ctx, x):
        y = torch.sigmoid(x)
        ctx.save_for_backward(y)
        return y


class SigmoidReadingItsGradientAsContiguous(Sigmoid):
    """A backward that indexes its incoming gradient with contiguous strides (a raw-pointer kernel)."""

    @staticmethod
    def backward(ctx, grad):
        (y,) = ctx.saved_tensors
        strides = [1] * grad.dim()
        for d in range(grad.dim() - 2, -1, -1):
            strides[d] = strides[d + 1] * grad.shape[d + 1]
        grad = grad.as_strided(grad.shape, strides, grad.storage_offset())
        return grad * y * (1 - y)


def test_a_backward_that_assumes_a_contiguous_incoming_gradient_fails_in_the_layout_trial():
    msg = failure(SigmoidReadingItsGradientAsContiguous.apply, torch.sigmoid, rows)
    assert "1 problem in trial 4 of 7 (non-contiguous layout)" in msg
    assert "grad of input 0: shape (6, 10)" in msg
    assert "gradients flowing in (cotangents): non-contiguous too" in msg
    assert "output[" not in msg  # its forward is right


class SigmoidViewingItsGradient(Sigmoid):
    @staticmethod
    def backward(ctx, grad):
        (y,) = ctx.saved_tensors
        return (grad.view(-1) * (y * (1 - y)).reshape(-1)).view(y.shape)


def test_a_backward_that_crashes_on_a_strided_incoming_gradient_is_told_so():
    _, notes = crash(RuntimeError, lambda: assert_same_as_reference(SigmoidViewingItsGradient.apply, torch.sigmoid, rows))
    assert "while computing gradients of the candidate (backward) in trial 4 of 7 (non-contiguous layout)" in notes
    assert "gradients flowing in (cotangents): non-contiguous too" in notes


class SigmoidReusingItsIncomingGradient(Sigmoid):
    """A correct backward that writes its result into the incoming gradient's buffer."""

    @staticmethod
    def backward(ctx, grad):
        (y,) = ctx.saved_tensors
        return grad.mul_(y * (1 - y))


def test_a_backward_that_overwrites_its_incoming_gradient_still_passes():
    # The reference and the float64 truth must not see the overwritten cotangent.
    report = assert_same_as_reference(SigmoidReusingItsIncomingGradient.apply, torch.sigmoid, rows)
    assert len(report.gradients) == 7


def test_a_candidate_that_calls_view_on_a_strided_input_crashes_with_the_trial_named():
    _, notes = crash(RuntimeError, lambda: assert_same_as_reference(lambda x: x.view(-1), lambda x: x.reshape(-1), rows))
    assert "while running the candidate in trial 4 of 7 (non-contiguous layout)" in notes
    assert "rerun: assert_same_as_reference(" in notes


# --- numerical stability ---------------------------------------------------------


def unstable_softmax(logits):
    exp = torch.exp(logits)
    return exp / exp.sum(-1, keepdim=True)


def stable_softmax(logits):
    exp = torch.exp(logits - logits.amax(-1, keepdim=True))
    return exp / exp.sum(-1, keepdim=True)


def unstable_softmax_cross_entropy(labels, logits):
    return -torch.sum(labels * torch.log(unstable_softmax(logits)), -1)


def softmax_cross_entropy(labels, logits):
    scaled = logits - logits.amax(-1, keepdim=True)
    normalized = scaled - torch.logsumexp(scaled, -1, keepdim=True)
    return -torch.sum(labels * normalized, -1)


def ce_inputs(make):
    return (make(8, 5, low=0, high=1), make(8, 5))


def test_the_guides_unstable_softmax_fails_at_large_magnitude():
    msg = failure(unstable_softmax, stable_softmax, rows)
    assert "trial 5 of 7 (large magnitude)" in msg
    assert "candidate is non-finite where the reference is finite" in msg
    assert "at input scale x111" in msg
    assert "; 4 earlier trials passed" in msg


def test_the_guides_unstable_cross_entropy_fails_while_the_stable_one_passes():
    msg = failure(unstable_softmax_cross_entropy, softmax_cross_entropy, ce_inputs)
    assert "non-finite where the reference is finite" in msg
    report = assert_same_as_reference(softmax_cross_entropy, softmax_cross_entropy, ce_inputs)
    assert report.kinds == ["random", "random", "random", "layout", "large", "small", "offset"]


def test_a_candidate_stabler_than_its_reference_passes_with_a_note():
    report = assert_same_as_reference(stable_softmax, unstable_softmax, rows)
    assert any("candidate stabler than reference" in note for note in report.notes)
    assert any("at input scale x111" in note for note in report.notes)


# --- mutation --------------------------------------------------------------------


def test_a_candidate_that_mutates_its_input_is_named():
    def candidate(x):
        return x.mul_(2)

    msg = failure(candidate, lambda x: x * 2, rows)
    assert "input 0: candidate modified input 0 in place" in msg
    assert "values changed at 60 of 60 elements" in msg
    assert "mutates=(0,)" in msg


def test_mutation_through_data_without_a_version_bump_is_still_caught():
    def candidate(x, y):
        y.data.add_(1)
        return x + 1

    msg = failure(candidate, lambda x, y: x + 1, lambda make: (make(3), make(3)), check_grad=False)
    assert "candidate modified input 1 in place (values changed at 3 of 3 elements)" in msg


def test_declared_mutation_is_allowed_and_its_result_compared():
    def reference(x, out):
        out.copy_(x * 2)
        return out

    def good(x, out):
        out.copy_(x + x)
        return out

    def bad(x, out):
        out.copy_(x * 3)
        return out

    inputs = lambda make: (make(4, 3), make(4, 3))  # noqa: E731
    assert_same_as_reference(good, reference, inputs, mutates=(1,))
    msg = failure(bad, reference, inputs, mutates=(1,))
    assert "input 1 after the call" in msg


# --- randomness -------------------------------------------------------------------


def test_random_ops_get_the_same_rng_state_on_both_sides():
    report = assert_same_as_reference(
        lambda x: F.dropout(x * 1.0, 0.5, training=True),
        lambda x: F.dropout(x, 0.5, training=True),
        rows,
    )
    assert len(report.trials) == 7


def test_a_candidate_that_draws_its_random_numbers_differently_fails():
    def candidate(x):
        keep = torch.rand_like(x) > 0.5
        return torch.where(keep, x * 2, torch.zeros_like(x))

    msg = failure(candidate, lambda x: F.dropout(x, 0.5, training=True), rows)
    assert "elements differ" in msg
