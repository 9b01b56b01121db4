"""reference_impls: the ops themselves, the guide's numbers, merge weights, the registry."""

from __future__ import annotations

import inspect
import warnings

import pytest
import torch

import reference_impls
from pytest_effective_torch import Args, CheckFailed, Maker, assert_same_as_reference
from reference_impls import CLAIM_KINDS, CLAIMS, FITS, PAIRS, Claim, Fit, Pair
from reference_impls.batch_gather import (
    gather_flat_index,
    gather_inputs,
    gather_loop,
    gather_native,
    gather_torchscript,
    has_torchscript,
)
from reference_impls.broadcast_trap import column_sums, column_sums_trap
from reference_impls.cross_entropy import cross_entropy_naive, cross_entropy_stable
from reference_impls.curve_fit import LinearNet, LinearNetNN, fit_linear, linear_data
from reference_impls.merge import ConcatMerge, Merge, concat_grads, param_map
from reference_impls.row_sum import row_sum_slicing, row_sum_torch, row_sum_unbind
from reference_impls.softmax import softmax_naive, softmax_stable, softmax_torch
from reference_impls.triton_ops import triton_skip_reason


def _build(builder, dtype=torch.float32, seed=0) -> Args:
    out = builder(Maker("cpu", dtype, seed))
    return out if isinstance(out, Args) else Args(*out)


# ---------------------------------------------------------------- the ops agree


@pytest.mark.parametrize("per_row", [None, 3])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.bfloat16, torch.int64])
def test_every_batch_gather_returns_the_loops_rows_exactly(per_row, dtype):
    tensor = torch.arange(6 * 5 * 4).reshape(6, 5, 4).to(dtype)
    indices = torch.tensor([[0, 4, 2], [1, 1, 3], [4, 0, 0], [2, 3, 1], [3, 2, 4], [0, 0, 0]])
    if per_row is None:
        indices = indices[:, 0]
    expected = gather_loop(tensor, indices)
    assert expected.shape == (6, *indices.shape[1:], 4)
    for fn in (gather_flat_index, gather_native):
        assert torch.equal(fn(tensor, indices), expected), fn.__name__


def test_batch_gather_picks_out_tensor_i_at_index_i():
    x = torch.arange(12.0).reshape(3, 4)
    assert gather_native(x, torch.tensor([0, 3, 1])).tolist() == [0.0, 7.0, 9.0]
    assert gather_flat_index(x, torch.tensor([0, 3, 1])).tolist() == [0.0, 7.0, 9.0]


def test_flat_index_gather_keeps_the_inputs_device_instead_of_calling_cuda():
    # The guide's version calls .cuda() on the offsets; this one must run on
    # a CPU-only machine and must not mention .cuda() at all.
    x, idx = torch.randn(4, 5, 2), torch.tensor([1, 0, 4, 2])
    assert gather_flat_index(x, idx).device == x.device
    assert ".cuda()" not in inspect.getsource(gather_flat_index)


@pytest.mark.skipif(not has_torchscript(), reason="this torch has no torch.jit.script")
def test_torchscript_gather_matches_the_loop_and_hides_the_deprecation_warning():
    x, idx = _build(gather_inputs(8, 6, 3)).args
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        out = gather_torchscript(x, idx)
    assert torch.equal(out, gather_loop(x, idx))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_row_sums_agree_and_unbind_is_bitwise_the_slicing_loop(dtype):
    x = torch.randn(500, 10, dtype=dtype, generator=torch.Generator().manual_seed(1))
    assert torch.equal(row_sum_unbind(x), row_sum_slicing(x))
    torch.testing.assert_close(row_sum_torch(x), row_sum_slicing(x))
    assert row_sum_torch(x).shape == (10,)


def test_row_sums_reduce_dim_0_of_any_rank():
    x = torch.ones(7, 2, 3)
    for fn in (row_sum_slicing, row_sum_unbind, row_sum_torch):
        assert torch.equal(fn(x), torch.full((2, 3), 7.0)), fn.__name__


@pytest.mark.parametrize("dim", [0, 1, -1])
def test_softmaxes_agree_on_moderate_logits_over_any_dim(dim):
    logits = torch.randn(3, 4, 5, dtype=torch.float64, generator=torch.Generator().manual_seed(2))
    expected = torch.softmax(logits, dim)
    for fn in (softmax_naive, softmax_stable, softmax_torch):
        torch.testing.assert_close(fn(logits, dim), expected)
        torch.testing.assert_close(
            fn(logits, dim).sum(dim), torch.ones(()).expand_as(logits.sum(dim)).double()
        )


def test_cross_entropies_agree_with_torch_on_soft_labels():
    gen = torch.Generator().manual_seed(3)
    logits = torch.randn(6, 5, dtype=torch.float64, generator=gen)
    labels = torch.softmax(torch.randn(6, 5, dtype=torch.float64, generator=gen), -1)
    expected = torch.nn.functional.cross_entropy(logits, labels, reduction="none")
    torch.testing.assert_close(cross_entropy_naive(labels, logits), expected)
    torch.testing.assert_close(cross_entropy_stable(labels, logits), expected)


# ----------------------------------------------------------- the guide's numbers


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_naive_softmax_is_nan_at_1000_0_and_the_stable_ones_are_1_0(dtype):
    logits = torch.tensor([1000.0, 0.0], dtype=dtype)
    naive = softmax_naive(logits)
    assert torch.isnan(naive[0]) and naive[1] == 0
    for fn in (softmax_stable, softmax_torch):
        assert fn(logits).tolist() == [1.0, 0.0]


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.float16, torch.bfloat16])
def test_cross_entropy_at_the_guides_logits_is_inf_naively_and_500_stably(dtype):
    labels = torch.tensor([0.5, 0.5], dtype=dtype)
    logits = torch.tensor([1000.0, 0.0], dtype=dtype, requires_grad=True)
    assert cross_entropy_naive(labels, logits).item() == float("inf")
    loss = cross_entropy_stable(labels, logits)
    assert loss.item() == 500.0
    (grad,) = torch.autograd.grad(loss, logits)
    assert grad.tolist() == [0.5, -0.5]


def test_naive_cross_entropys_gradient_at_the_guides_logits_is_not_finite():
    labels = torch.tensor([0.5, 0.5])
    logits = torch.tensor([1000.0, 0.0], requires_grad=True)
    (grad,) = torch.autograd.grad(cross_entropy_naive(labels, logits), logits)
    assert not torch.isfinite(grad).all()


def test_the_broadcasting_trap_gives_12_where_5_7_was_meant():
    a, b = torch.tensor([[1.0], [2.0]]), torch.tensor([1.0, 2.0])
    assert column_sums(a, b).tolist() == [5.0, 7.0]
    assert column_sums_trap(a, b).item() == 12.0


def test_the_plugin_catches_the_trap_by_its_shape_and_says_so():
    pair = PAIRS["broadcast_trap.sum_all"]
    with pytest.raises(CheckFailed) as info:
        assert_same_as_reference(pair.candidate, pair.reference, pair.inputs)
    message = str(info.value)
    assert "output: candidate shape () vs (3,)" in message
    assert "the shapes broadcast together" in message


def test_the_guides_mistakes_are_real():
    # torch.reduce_max is TensorFlow's name; PyTorch has amax / max.
    assert not hasattr(torch, "reduce_max")
    # torch.tensor(tensor) copies and warns; the fit uses requires_grad_().
    with pytest.warns(UserWarning, match="clone"):
        torch.tensor(torch.randn(3, 1), requires_grad=True)


# ------------------------------------------------------------------- merge


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_merge_from_concat_computes_the_same_function(dtype):
    torch.manual_seed(0)
    concat = ConcatMerge(5, 6, 10, activation=torch.relu).to(dtype=dtype)
    merge = Merge.from_concat(concat)
    a, b = torch.rand(5, 3, 5, dtype=dtype), torch.rand(5, 1, 6, dtype=dtype)
    out = merge(a, b)
    assert out.shape == (5, 3, 10)
    torch.testing.assert_close(out, concat(a, b))
    assert merge.linear1.weight.dtype == dtype


def test_merge_from_concat_splits_the_weight_and_adds_the_bias_once():
    concat = ConcatMerge(2, 3, 4)
    merge = Merge.from_concat(concat)
    weight = concat.linear.weight
    assert torch.equal(merge.linear1.weight, weight[:, :2])
    assert torch.equal(merge.linear2.weight, weight[:, 2:])
    assert torch.equal(merge.linear1.bias, concat.linear.bias)
    assert not merge.linear2.bias.any()
    # No shared storage: training one must not move the other.
    with torch.no_grad():
        merge.linear1.weight.add_(1)
    assert torch.equal(concat.linear.weight, weight)


def test_merge_gradients_reassemble_into_the_concats():
    torch.manual_seed(1)
    concat = ConcatMerge(5, 6, 10, activation=torch.tanh).double()
    merge = Merge.from_concat(concat)
    a, b = torch.rand(4, 3, 5, dtype=torch.float64), torch.rand(4, 1, 6, dtype=torch.float64)
    concat(a, b).square().sum().backward()
    merge(a, b).square().sum().backward()
    got = concat_grads(merge)
    torch.testing.assert_close(got["linear.weight"], concat.linear.weight.grad)
    torch.testing.assert_close(got["linear.bias"], concat.linear.bias.grad)
    expected = param_map(5)({n: p.grad for n, p in concat.named_parameters()})
    for name, p in merge.named_parameters():
        torch.testing.assert_close(p.grad, expected[name], msg=name)


def test_merge_broadcasts_inputs_of_different_rank():
    concat = ConcatMerge(3, 2, 4).double()
    merge = Merge.from_concat(concat)
    a, b = torch.rand(2, 5, 3, dtype=torch.float64), torch.rand(2, dtype=torch.float64)
    torch.testing.assert_close(merge(a, b), concat(a, b))


def test_a_merge_with_a_wrong_weight_split_is_caught_through_the_parameter_map():
    def swapped(device, dtype):
        merge, concat = PAIRS["merge.broadcast"].bind(device, dtype)
        with torch.no_grad():
            merge.linear2.bias.copy_(merge.linear1.bias)  # bias added twice
        return merge, concat

    merge, concat = swapped("cpu", torch.float32)
    with pytest.raises(CheckFailed):
        assert_same_as_reference(merge, concat, PAIRS["merge.broadcast"].inputs)


# ------------------------------------------------------------------- fits


@pytest.mark.parametrize("model", [LinearNet, LinearNetNN])
def test_linear_fit_lands_on_least_squares_and_an_intercept_near_3_15(model):
    # Fewer, larger steps than the registered fit (the suite runs that one):
    # the same minimum, reached in a fifth of the time.
    fitted = fit_linear(model, "cpu", torch.float64, seed=0, steps=2000, lr=0.05)
    # Same draws as fit_linear: the model's two initial numbers come first.
    gen = torch.Generator().manual_seed(0)
    model(gen)
    x, y = linear_data(gen)
    design = torch.stack([x, torch.ones_like(x)], 1)
    slope, intercept = torch.linalg.lstsq(design, y.unsqueeze(1)).solution.flatten().tolist()
    assert fitted["slope"] == pytest.approx(slope, abs=1e-3)
    assert fitted["intercept"] == pytest.approx(intercept, abs=1e-3)
    assert fitted["intercept"] == pytest.approx(3.15, abs=0.05)


def test_linear_data_noise_has_mean_0_15():
    x, y = linear_data(torch.Generator().manual_seed(0), n=100_000)
    assert (y - 5 * x - 3).mean().item() == pytest.approx(0.15, abs=0.005)


def test_fit_misses_names_the_coefficient_and_its_tolerance():
    fit = FITS["curve_fit.polynomial"]
    assert fit.misses({"x^2": 5.0, "x": 0.0, "1": 3.1}) == []
    assert fit.misses({"x^2": 5.0, "x": 0.0, "1": 3.45 + 0.1}) == ["1 = 3.55, expected 3 +- 0.25"]


# ------------------------------------------------------------------- registry


def test_every_pair_is_registered_under_its_topic_with_builders_and_base_dtypes():
    assert PAIRS, "no pairs registered"
    for name, pair in PAIRS.items():
        assert isinstance(pair, Pair) and pair.name == name
        assert name.startswith(pair.topic + ".")
        assert callable(pair.inputs) and callable(pair.small_inputs), name
        assert {"float32", "float64"} <= set(pair.dtypes), name
        assert pair.compile_inputs is None or callable(pair.compile_inputs), name


@pytest.mark.parametrize("pair", list(PAIRS.values()), ids=lambda p: p.name)
def test_every_pairs_builders_make_inputs_both_sides_accept(pair):
    for builder in (pair.inputs, pair.small_inputs):
        args = _build(builder, torch.float64)
        assert all(
            t.dtype in (torch.float64, torch.int64)
            for t in args.args
            if isinstance(t, torch.Tensor)
        )
        if pair.triton and triton_skip_reason("cpu") is not None:
            continue  # run under TRITON_INTERPRET=1 by test_reference_impls_triton.py
        candidate, reference = pair.bind("cpu", torch.float64)
        cand, ref = candidate(*args.args, **args.kwargs), reference(*args.args, **args.kwargs)
        if pair.expected_failure:
            assert cand.shape != ref.shape
        else:
            torch.testing.assert_close(cand, ref)


def test_every_claim_is_about_a_registered_subject_and_valid():
    ids = [claim.id for claim in CLAIMS]
    assert len(ids) == len(set(ids)), "duplicate claims"
    for claim in CLAIMS:
        assert isinstance(claim, Claim) and claim.kind in CLAIM_KINDS
        assert claim.subject in PAIRS or claim.subject in FITS, claim.id
        assert claim.guide and len(claim.guide) <= 48, claim.id
        if claim.kind in ("faster", "less_memory"):
            assert claim.subject in PAIRS and (claim.inputs or PAIRS[claim.subject].large_inputs)
        if claim.kind == "less_memory":
            assert claim.max_memory_ratio is not None
        if claim.kind == "stabler":
            assert claim.inputs is not None and claim.expected is not None
        if claim.kind == "fits":
            assert isinstance(FITS[claim.subject], Fit)


def test_every_pair_has_an_equivalence_or_caught_claim_and_every_fit_a_fits_claim():
    ids = {claim.id for claim in CLAIMS}
    for name, pair in PAIRS.items():
        assert f"{name}:{'caught' if pair.expected_failure else 'equal'}" in ids
    for name in FITS:
        assert f"{name}:fits" in ids


def test_speed_claims_state_the_guides_numbers_as_thresholds():
    faster = {claim.id: claim for claim in CLAIMS if claim.kind == "faster"}
    vec = faster["batch_gather.flat_index:faster"]
    assert vec.min_speedup_on("cpu") == 10 and vec.min_speedup_on("cuda") == 100
    assert faster["row_sum.sum:faster"].min_speedup == 50
    assert faster["batch_gather.torchscript:faster"].min_speedup is None  # reported only


def test_a_user_can_reuse_a_pair_in_their_own_check():
    pair = reference_impls.PAIRS["softmax.stable"]

    def my_softmax(logits, dim=-1):
        return torch.exp(torch.log_softmax(logits, dim))

    report = assert_same_as_reference(my_softmax, pair.candidate, pair.inputs, dtype=torch.float64)
    assert report.trials


def test_the_readmes_gather_through_torch_gather_matches_the_loop_pair():
    pair = PAIRS["batch_gather.native"]

    def my_gather(tensor, indices):
        index = indices.reshape(-1, 1, *[1] * (tensor.dim() - 2))
        return tensor.gather(1, index.expand(-1, 1, *tensor.shape[2:])).squeeze(1)

    assert_same_as_reference(my_gather, pair.reference, pair.inputs, dtype=torch.float64)


def test_bandwidth_counts_bytes_moved_by_gather_and_copy():
    from reference_impls.bandwidth import main, measure

    gather, copy = measure("cpu", batch=64, n=4, width=8)
    assert gather.nbytes == 2 * 64 * 8 * 4 + 64 * 8  # read + write the rows, read int64 indices
    assert copy.nbytes == 2 * 64 * 4 * 8 * 4
    assert gather.bytes_per_second > 0 and copy.bytes_per_second > 0
    assert main(["--device=cpu", "--scale=0.001"]) == 0


def test_the_gather_sweep_counts_the_bytes_one_gather_moves():
    from pytest_effective_torch import Maker
    from reference_impls.batch_gather import gather_by_batch, gather_flat_index, gather_nbytes

    for batch in (1, 64):
        tensor, indices = gather_by_batch(Maker("cpu", torch.float32, 0), batch=batch)
        out = gather_flat_index(tensor, indices)
        moved = 2 * out.numel() * out.element_size() + indices.numel() * indices.element_size()
        assert tensor.shape == (batch, 64, 16) and gather_nbytes(batch) == moved


def test_sweep_claims_give_builders_that_take_their_size_keywords():
    import inspect

    swept = [claim for claim in CLAIMS if claim.sizes]
    assert {claim.id for claim in swept} >= {
        "batch_gather.flat_index:faster:sweep", "softmax.torch:faster:sweep", "softmax.stable:equal:sweep",
    }  # fmt: skip
    for claim in swept:
        parameters = inspect.signature(claim.inputs).parameters
        assert all(parameters[key].kind is inspect.Parameter.KEYWORD_ONLY for key in claim.sizes), claim.id
    from pytest_effective_torch import edge_sizes
    from reference_impls.softmax import EDGE_LENGTHS

    assert list(EDGE_LENGTHS) == edge_sizes(16, 64)
    gather = next(c for c in swept if c.id == "batch_gather.flat_index:faster:sweep")
    assert gather.min_speedup_on("cpu")(1) is None and gather.min_speedup_on("cpu")(1024) == 10


@pytest.mark.parametrize("module", reference_impls.TOPICS, ids=lambda m: m.__name__)
def test_the_topic_modules_docstring_examples_run(module):
    import doctest

    result = doctest.testmod(module, optionflags=doctest.NORMALIZE_WHITESPACE)
    assert result.failed == 0 and result.attempted > 0
