"""The condition-aware tolerance: each cause of a wrong verdict on real kernels, both ways.

For every cause, a candidate with that kind of numerical fault fails with a
message that says where, and a correct candidate in the same regime passes.
Real tensors, small shapes, default settings.
"""

from __future__ import annotations

import math
import re

import pytest
import torch
import torch.nn.functional as F

from pytest_effective_torch import CheckFailed, ReferenceNotDtypeGeneric, assert_same_as_reference
from pytest_effective_torch.equivalence.tolerance import Tolerance, bounds_for, judge
from pytest_effective_torch.inputs import Maker


def failure(candidate, reference, inputs, **kwargs) -> str:
    with pytest.raises(CheckFailed) as info:
        assert_same_as_reference(candidate, reference, inputs, **kwargs)
    return str(info.value)


def verdict(c, t):
    return judge(
        c.float(), t.float(), t, bounds=bounds_for(torch.float32), tolerance=Tolerance(), user_defaults=(1e-5, 1.3e-6)
    )


# --- 1. relative accuracy per element ------------------------------------------------


def test_a_small_element_a_few_percent_off_fails_though_the_norm_hides_it():
    t = torch.logspace(-3, 1, 200, dtype=torch.float64)
    wrong = t * torch.where(t < 2e-3, 1.05, 1.0)  # the few smallest elements 5% off
    v = verdict(wrong, t)
    assert not v.ok
    small = int((t < 2e-3).sum())
    assert v.mismatch.index[0] < small and 0 < v.mismatch.count <= small
    assert "elementwise bound exceeded" in v.mismatch.criterion


def test_elements_far_below_the_tensors_scale_may_carry_its_rounding_noise():
    t = torch.logspace(-3, 1, 200, dtype=torch.float64)
    noise = 4 * torch.finfo(torch.float32).eps * float(t.square().mean().sqrt())
    assert verdict(t + noise * torch.cos(torch.arange(200.0, dtype=torch.float64)), t).ok


def test_float32_gelu_passes_although_its_far_tail_is_off_by_percents():
    def gelu_in_float64(x):
        return x * 0.5 * (1 + torch.erf(x / math.sqrt(2)))

    assert_same_as_reference(F.gelu, gelu_in_float64, lambda make: (make(64, 257),))


# --- 2. declared domains in the small-magnitude trial ---------------------------------


def log_one_plus(x):
    return torch.log(1 + x)


def in_domain(make):
    return (make(64, 128, low=-0.5, high=1.0),)


def test_log_of_one_plus_x_fails_in_the_small_trial_inside_its_declared_domain():
    msg = failure(log_one_plus, torch.log1p, in_domain)
    assert "trial 6 of 7 (small magnitude)" in msg
    assert "output: shape (64, 128), float32, cpu:" in msg


def test_log1p_passes_at_every_scale_of_its_domain():
    assert_same_as_reference(torch.log1p, torch.log1p, in_domain)


def test_a_declared_interval_shrinks_toward_zero_only_when_it_contains_zero():
    make = Maker("cpu", torch.float32, seed=0, scale=1e-3)
    around_zero = make(1000, low=-0.5, high=1.0)
    probabilities = make(1000, low=0.02, high=0.98)
    assert -5e-4 <= float(around_zero.min()) and float(around_zero.max()) <= 1e-3
    assert float(probabilities.min()) >= 0.02 and float(probabilities.max()) <= 0.98
    assert [scaled for _, scaled in make.made] == [True, False]


# --- 3. the gradient floor -------------------------------------------------------------


class CrossEntropySavingBfloat16Probabilities(torch.autograd.Function):
    """A fused cross-entropy that keeps softmax in bfloat16 for backward, to save memory."""

    @staticmethod
    def forward(ctx, logits, target):
        ctx.save_for_backward(torch.softmax(logits, -1).to(torch.bfloat16), target)
        return F.cross_entropy(logits, target)

    @staticmethod
    def backward(ctx, grad):
        p, target = ctx.saved_tensors
        one_hot = F.one_hot(target, p.size(-1)).to(grad.dtype)
        return grad * (p.to(grad.dtype) - one_hot) / p.size(0), None


def logits_and_targets(make):
    return make(64, 100), make(64, dtype=torch.long, high=100)


def test_a_scalar_loss_does_not_excuse_a_logit_gradient_off_by_tenths_of_a_percent():
    msg = failure(CrossEntropySavingBfloat16Probabilities.apply, F.cross_entropy, logits_and_targets)
    assert "trial 1 of 7 (random values)" in msg
    assert re.search(r"grad of input 0: shape \(64, 100\), float32, cpu: \d+ of 6400 elements differ", msg)


def test_cross_entropy_written_out_passes():
    def cross_entropy(logits, target):
        return -torch.log_softmax(logits, -1).gather(-1, target[:, None]).mean()

    assert_same_as_reference(cross_entropy, F.cross_entropy, logits_and_targets)


def test_attention_whose_first_query_sees_one_key_passes_with_a_zero_true_gradient():
    def attention(q, k, v):  # the first query's softmax has one entry: its gradient is exactly 0
        s = q @ k.transpose(-1, -2) / math.sqrt(q.size(-1))
        keep = torch.ones(s.shape[-2:], dtype=torch.bool).tril()
        return torch.softmax(s.masked_fill(~keep, -math.inf), -1) @ v

    def qkv(make):
        return make(2, 4, 40, 32, low=-3, high=3), make(2, 4, 40, 32, low=-3, high=3), make(2, 4, 40, 32)

    assert_same_as_reference(lambda q, k, v: F.scaled_dot_product_attention(q, k, v, is_causal=True), attention, qkv)


# --- 4. conditioning ----------------------------------------------------------------------


def two_pass_variance(x):
    d = x - x.mean(-1, keepdim=True)
    return (d * d).sum(-1) / (x.size(-1) - 1)


def near_300(make):
    return (make(48, 300, low=-1e-3, high=1e-3) + 300,)


def test_a_variance_gradient_as_accurate_as_its_rounded_inputs_allow_passes():
    # torch.var's gradient here is 3% off the truth, but nudging the inputs
    # by half an ulp moves the true gradient about as much
    assert_same_as_reference(lambda x: torch.var(x, -1), two_pass_variance, near_300)


def test_a_one_pass_variance_fails_where_its_error_is_beyond_what_rounding_the_inputs_causes():
    msg = failure(lambda x: (x * x).mean(-1) * (300 / 299) - x.mean(-1) ** 2 * (300 / 299), two_pass_variance, near_300)
    assert "output: shape (48,), float32, cpu:" in msg
    assert "the allowance includes what rounding the inputs moves the truth" in msg


def test_kl_divergence_of_nearly_identical_distributions_passes():
    def kl(logp, q):
        return (q * (torch.log(q) - logp)).sum() / logp.size(0)

    def close(make):
        z = make(32, 50, low=-3, high=3)
        return torch.log_softmax(z + 1e-3 * make(32, 50), -1), torch.softmax(z, -1)

    assert_same_as_reference(lambda logp, q: F.kl_div(logp, q, reduction="batchmean"), kl, close)


# --- 5. data far from zero ---------------------------------------------------------------


def test_a_one_pass_variance_fails_on_data_offset_from_zero_though_centred_data_passes_it():
    msg = failure(lambda x: (x * x).mean(-1) - x.mean(-1) ** 2, lambda x: torch.var(x, -1, correction=0),
                  lambda make: (make(32, 512),))  # fmt: skip
    assert "trial 7 of 7 (offset from zero)" in msg
    assert "inputs shifted by +1.83e+03 (unless the builder fixed low/high); 6 earlier trials passed" in msg


def test_layer_norm_on_activations_far_from_zero_passes():
    def layer_norm(x, w, b):
        mean = x.mean(-1, keepdim=True)
        var = ((x - mean) ** 2).mean(-1, keepdim=True)
        return (x - mean) / torch.sqrt(var + 1e-5) * w + b

    report = assert_same_as_reference(
        lambda x, w, b: F.layer_norm(x, (96,), w, b), layer_norm, lambda make: (make(8, 33, 96) + 300, make(96), make(96))
    )
    assert report.kinds[-1] == "offset"


# --- 6. a reference that computes in float32 inside -----------------------------------------


def exp_in_float32(x):  # returns the input's dtype, computes in float32
    return torch.exp(x.float() / 3).to(x.dtype)


def test_a_reference_computing_in_float32_inside_is_reported_and_not_trusted_in_float64():
    with pytest.warns(ReferenceNotDtypeGeneric, match="nudged below float32's resolution"):
        report = assert_same_as_reference(lambda x: torch.exp(x / 3), exp_in_float32, lambda make: (make(64, 100),),
                                          dtype=torch.float64)  # fmt: skip
    assert any("reference is not dtype-generic" in note and "float32 or coarser inside" in note for note in report.notes)


def test_and_a_wrong_candidate_still_fails_against_it():
    with pytest.warns(ReferenceNotDtypeGeneric):
        msg = failure(lambda x: torch.exp(x / 3) * 1.001, exp_in_float32, lambda make: (make(64, 100),),
                      dtype=torch.float64)  # fmt: skip
    assert "reference is not dtype-generic" in msg


def test_a_passing_check_never_reruns_the_reference():
    calls = []

    def reference(x):
        calls.append(x.dtype)
        return torch.exp(x / 3)

    assert_same_as_reference(lambda x: torch.exp(x / 3), reference, lambda make: (make(64, 100),), dtype=torch.float64)
    assert len(calls) == 7  # once per trial: no perturbed reruns, no probe
