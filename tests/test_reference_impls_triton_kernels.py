"""The Triton kernels of ``reference_impls.triton_ops`` against their references.

These tests run the kernels, so they need a device Triton can run on:

- CPU tensors through Triton's interpreter: the whole pytest process must
  have ``TRITON_INTERPRET=1`` (Triton decides when a kernel is defined,
  which happens once per process)::

      TRITON_INTERPRET=1 pytest tests/test_reference_impls_triton_kernels.py

  A plain ``pytest`` run does that in a subprocess
  (``tests/test_reference_impls_triton.py``), so the kernels are checked on
  every run where triton is installed, without switching the rest of the
  test session to the interpreter.
- CUDA tensors, compiled: ``pytest tests/test_reference_impls_triton_kernels.py
  --device=cuda`` (without ``TRITON_INTERPRET``).

Elsewhere every test skips, saying which of the two is missing.
"""

from __future__ import annotations

import math
from types import ModuleType

import pytest
import torch

from pytest_effective_torch import Maker
from reference_impls.batch_gather import gather_loop
from reference_impls.cross_entropy import cross_entropy_naive, cross_entropy_stable
from reference_impls.triton_ops import (
    cross_entropy_triton,
    gather_triton,
    load_kernels,
    triton_skip_reason,
)

FLOATS = [torch.float32, torch.float64, torch.float16, torch.bfloat16]


@pytest.fixture(autouse=True)
def _kernels_can_run(device: torch.device) -> None:
    reason = triton_skip_reason(device)
    if reason is not None:
        pytest.skip(reason)


@pytest.fixture
def gather_module() -> ModuleType:
    return load_kernels()[0]


@pytest.fixture
def cross_entropy_module() -> ModuleType:
    return load_kernels()[1]


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _source(
    shape: tuple[int, ...], dtype: torch.dtype, device: torch.device, seed: int = 0
) -> torch.Tensor:
    if dtype.is_floating_point:
        return torch.randn(shape, generator=_gen(seed), dtype=torch.float64).to(device, dtype)
    return torch.randint(-100, 100, shape, generator=_gen(seed)).to(device, dtype)


def _indices(
    batch: int, n: int, per_row: tuple[int, ...], device: torch.device, seed: int = 1
) -> torch.Tensor:
    return torch.randint(0, n, (batch, *per_row), generator=_gen(seed)).to(device)


# ---------------------------------------------------------------- gather


@pytest.mark.parametrize("dtype", [*FLOATS, torch.int64, torch.int32])
@pytest.mark.parametrize(
    ("shape", "per_row"),
    [
        ((6, 5, 4), ()),
        ((6, 5, 4), (3,)),
        ((3, 7), ()),  # no trailing dimensions: width 1
        ((5, 9, 3, 7), (2, 2)),  # several trailing and several index dimensions
        ((37, 4, 24), ()),  # 37 rows, 24 columns: remainders in both
    ],
)
def test_the_triton_gather_returns_the_loops_rows_bitwise(shape, per_row, dtype, device):
    tensor = _source(shape, dtype, device)
    indices = _indices(shape[0], shape[1], per_row, device)
    got = gather_triton(tensor, indices)
    assert got.dtype == dtype and got.device == tensor.device
    assert torch.equal(got, gather_loop(tensor, indices))


def test_remainder_tiles_of_rows_and_of_split_columns_are_gathered(device, gather_module):
    # 70 rows and 1030 float32 columns: the columns split over two programs
    # (1024 + 6) and the rows do not fill the last row block.
    rows, width = 70, 1030
    config = gather_module.gather_config(rows, width, 4)
    assert rows % config.block_rows and width % config.block_cols and width > config.block_cols
    tensor = _source((rows, 3, width), torch.float32, device)
    indices = _indices(rows, 3, (), device)
    assert torch.equal(gather_triton(tensor, indices), gather_loop(tensor, indices))


def test_negative_and_int32_indices_index_like_torch(device):
    tensor = _source((4, 6, 5), torch.float32, device)
    indices = torch.tensor([[-1, 0], [5, -6], [-3, 2], [1, -2]], device=device)
    expected = gather_loop(tensor, indices)
    assert torch.equal(gather_triton(tensor, indices), expected)
    assert torch.equal(gather_triton(tensor, indices.int()), expected)


@pytest.mark.parametrize(
    "layout",
    ["strided_rows", "transposed_batch", "strided_indices", "expanded_source"],
)
def test_non_contiguous_sources_and_indices_are_gathered_correctly(layout, device):
    tensor = _source((6, 5, 8), torch.float32, device)
    indices = _indices(6, 5, (), device)
    if layout == "strided_rows":
        tensor = _source((6, 5, 16), torch.float32, device)[:, :, ::2]
    elif layout == "transposed_batch":
        tensor = _source((5, 6, 8), torch.float32, device).transpose(0, 1)
    elif layout == "strided_indices":
        indices = _indices(12, 5, (), device)[::2]
    else:
        tensor = _source((1, 5, 8), torch.float32, device).expand(6, 5, 8)
    assert not (tensor.is_contiguous() and indices.is_contiguous())
    assert torch.equal(gather_triton(tensor, indices), gather_loop(tensor, indices))


@pytest.mark.parametrize(
    ("shape", "per_row"), [((0, 5, 3), ()), ((4, 5, 3), (0,)), ((4, 5, 0), ())]
)
def test_empty_gathers_have_the_right_shape(shape, per_row, device):
    tensor = _source(shape, torch.float32, device)
    indices = _indices(shape[0], shape[1], per_row, device)
    out = gather_triton(tensor, indices)
    assert out.shape == (shape[0], *per_row, *shape[2:])


def test_bad_indices_are_rejected_with_the_shapes(device):
    tensor = _source((4, 5, 3), torch.float32, device)
    with pytest.raises(TypeError, match="int64 or int32"):
        gather_triton(tensor, torch.zeros(4, device=device))
    with pytest.raises(ValueError, match=r"B = 4, got shape \(3,\)"):
        gather_triton(tensor, torch.zeros(3, dtype=torch.int64, device=device))


@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("per_row", [(), (4,)])
def test_the_gathers_gradient_is_the_loops(per_row, dtype, device):
    # Indices drawn from 3 rows, so with 4 per row some repeat and the
    # backward adds (atomics, or torch's index_put_ for bfloat16).
    tensor = _source((7, 3, 20), dtype, device).requires_grad_()
    indices = _indices(7, 3, per_row, device)
    cotangent = _source((7, *per_row, 20), dtype, device, seed=5)
    (got,) = torch.autograd.grad(gather_triton(tensor, indices), tensor, cotangent)
    (want,) = torch.autograd.grad(gather_loop(tensor, indices), tensor, cotangent)
    if per_row:
        assert (torch.bincount(indices[0], minlength=3) > 1).any()
        torch.testing.assert_close(got, want)
    else:
        # One index per row: every source row gets at most one gradient row.
        assert torch.equal(got, want)


def test_gather_gradients_pass_gradcheck_and_gradgradcheck(device):
    for per_row in [(), (3,)]:
        tensor = _source((4, 5, 3), torch.float64, device).requires_grad_()
        indices = _indices(4, 5, per_row, device)

        def fn(t: torch.Tensor, indices: torch.Tensor = indices) -> torch.Tensor:
            return gather_triton(t, indices)

        assert torch.autograd.gradcheck(fn, (tensor,))
        assert torch.autograd.gradgradcheck(fn, (tensor,))


@pytest.mark.parametrize("per_row", [(), (3,)])
def test_the_gather_ops_pass_opcheck(per_row, device):
    tensor = _source((4, 5, 3), torch.float32, device).requires_grad_()
    indices = _indices(4, 5, per_row, device)
    grad = _source((4, *per_row, 3), torch.float32, device).requires_grad_()
    load_kernels()
    ops = torch.ops.reference_impls
    torch.library.opcheck(ops.batch_gather.default, (tensor, indices))
    torch.library.opcheck(ops.batch_gather_backward.default, (grad, indices, 5))


# ---------------------------------------------------------------- cross-entropy


def _soft(
    shape: tuple[int, ...], device: torch.device, dim: int = -1, scale: float = 4.0, seed: int = 0
):
    gen = _gen(seed)
    logits = scale * torch.randn(shape, generator=gen, dtype=torch.float64)
    labels = torch.softmax(torch.randn(shape, generator=gen, dtype=torch.float64), dim)
    return labels.to(device), logits.to(device)


#: Per dtype: float64 truth of the rounded inputs vs the kernel's output.
_CE_TOL = {
    torch.float64: {"rtol": 1e-12, "atol": 1e-12},
    torch.float32: {"rtol": 1e-5, "atol": 1e-5},
    torch.float16: {"rtol": 2e-3, "atol": 2e-3},
    torch.bfloat16: {"rtol": 1.6e-2, "atol": 1e-2},
}


@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize(
    ("shape", "dim"),
    [
        ((8, 10), -1),
        ((13, 37), -1),  # remainder rows and columns
        ((3, 5000), -1),  # more than one 4096-wide step, with a remainder
        ((2, 7, 3), 1),  # over a middle dimension
        ((5,), 0),  # one row
    ],
)
def test_the_fused_cross_entropy_and_its_gradients_match_float64(shape, dim, dtype, device):
    labels64, logits64 = _soft(shape, device, dim)
    labels = labels64.to(dtype).requires_grad_()
    logits = logits64.to(dtype).requires_grad_()
    loss = cross_entropy_triton(labels, logits, dim)
    # The truth: the stable form in float64 on the same (rounded) inputs.
    truth_labels = labels.detach().double().requires_grad_()
    truth_logits = logits.detach().double().requires_grad_()
    truth = cross_entropy_stable(truth_labels, truth_logits, dim)
    assert loss.dtype == dtype and loss.shape == truth.shape
    cotangent = torch.randn(truth.shape, generator=_gen(9), dtype=torch.float64).to(device)
    got = torch.autograd.grad(loss, (labels, logits), cotangent.to(dtype))
    want = torch.autograd.grad(truth, (truth_labels, truth_logits), cotangent)
    tol = _CE_TOL[dtype]
    torch.testing.assert_close(loss.double(), truth, **tol)
    torch.testing.assert_close(got[0].double(), want[0], **tol, msg="grad of labels")
    torch.testing.assert_close(got[1].double(), want[1], **tol, msg="grad of logits")


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_inputs_are_accumulated_in_float32(dtype, device):
    # 8000 classes: summed in the half type itself, the loss would be off by
    # about a percent; accumulated in float32 only the final rounding remains.
    labels64, logits64 = _soft((2, 8000), device)
    labels, logits = labels64.to(dtype), logits64.to(dtype)
    truth = cross_entropy_stable(labels.double(), logits.double())
    half_ulp = torch.finfo(dtype).eps / 2
    error = ((cross_entropy_triton(labels, logits).double() - truth).abs() / truth.abs()).max()
    assert error <= 1.5 * half_ulp, f"relative error {error:.3g}"


def test_large_logits_keep_their_digits(device):
    # Every logit near 1000: sum(labels) * lse - sum(labels * logits) would
    # cancel two numbers near 1000 (float32 error ~1e-4 here); the kernel
    # keeps its sums relative to the running maximum.
    labels64, logits64 = _soft((4, 100), device, scale=1.0)
    logits64 = logits64 + 1000
    got = cross_entropy_triton(labels64.float(), logits64.float()).double()
    truth = cross_entropy_stable(labels64.float().double(), logits64.float().double())
    assert (got - truth).abs().max() <= 1e-5


@pytest.mark.parametrize("dtype", FLOATS)
def test_the_guides_logits_give_500_and_gradient_half_minus_half(dtype, device):
    labels = torch.tensor([0.5, 0.5], dtype=dtype, device=device)
    logits = torch.tensor([1000.0, 0.0], dtype=dtype, device=device, requires_grad=True)
    assert cross_entropy_naive(labels, logits).item() == float("inf")
    loss = cross_entropy_triton(labels, logits)
    assert loss.shape == () and loss.item() == 500.0
    (grad,) = torch.autograd.grad(loss, logits)
    assert grad.tolist() == [0.5, -0.5]


def test_hard_labels_give_softmax_minus_onehot(device):
    logits = torch.randn(6, 9, generator=_gen(3), dtype=torch.float64).to(device).requires_grad_()
    target = torch.randint(0, 9, (6,), generator=_gen(4)).to(device)
    onehot = torch.nn.functional.one_hot(target, 9).double()
    loss = cross_entropy_triton(onehot, logits)
    torch.testing.assert_close(
        loss, torch.nn.functional.cross_entropy(logits, target, reduction="none")
    )
    (grad,) = torch.autograd.grad(loss.sum(), logits)
    torch.testing.assert_close(grad, torch.softmax(logits, -1) - onehot)


def test_labels_that_need_no_gradient_get_none_and_logits_still_theirs(device):
    labels64, logits64 = _soft((5, 11), device)
    logits = logits64.requires_grad_()
    loss = cross_entropy_triton(labels64, logits)
    (grad,) = torch.autograd.grad(loss.sum(), logits)
    torch.testing.assert_close(
        grad, torch.softmax(logits64, -1) * labels64.sum(-1, keepdim=True) - labels64
    )


def test_labels_that_do_not_sum_to_one_scale_the_softmax_term(device):
    # gradcheck perturbs the labels, so sum(labels) != 1 must be right too.
    labels64, logits64 = _soft((3, 6), device)
    labels = (3 * labels64).requires_grad_()
    logits = logits64.requires_grad_()
    assert torch.autograd.gradcheck(cross_entropy_triton, (labels, logits))


def test_the_cross_entropy_ops_pass_opcheck(device, cross_entropy_module):
    ops = torch.ops.reference_impls
    for shape in [(3, 6), (2, 3, 5), (4, 0)]:
        for labels_grad in (True, False):
            labels64, logits64 = _soft(shape, device)
            labels = labels64.requires_grad_(labels_grad)
            logits = logits64.requires_grad_()
            torch.library.opcheck(ops.cross_entropy.default, (labels, logits))
            _, lse, total = cross_entropy_module.cross_entropy_forward(labels64, logits64)
            grad = torch.randn(shape[:-1], generator=_gen(2), dtype=torch.float64).to(device)
            args = (grad, labels64.detach(), logits64.detach(), lse, total, labels_grad)
            torch.library.opcheck(ops.cross_entropy_backward.default, args)


def test_the_fused_kernel_saves_logsumexp_not_probabilities(device, cross_entropy_module):
    labels, logits = _soft((4, 7), device)
    logits.requires_grad_()
    saved: list[torch.Tensor] = []

    def pack(t: torch.Tensor) -> torch.Tensor:
        saved.append(t)
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        loss, lse, total = cross_entropy_module.cross_entropy_forward(labels, logits)
    torch.testing.assert_close(lse, torch.logsumexp(logits.detach(), -1))
    torch.testing.assert_close(total, labels.sum(-1))
    assert not lse.requires_grad and not total.requires_grad and loss.requires_grad
    # The inputs and one number per row each: nothing of the inputs' size
    # beyond the inputs themselves (no probabilities).
    assert sorted(tuple(t.shape) for t in saved) == [(4,), (4,), (4, 7), (4, 7)]
    assert any(t is logits or t.data_ptr() == logits.data_ptr() for t in saved)


# ---------------------------------------------------------------- the pairs' builders


def test_the_registered_check_inputs_exercise_remainder_tiles(
    device, gather_module, cross_entropy_module
):
    from reference_impls import PAIRS

    tensor, indices = PAIRS["batch_gather.triton"].inputs(Maker(device, torch.float32, 0))
    rows, width = indices.numel(), math.prod(tensor.shape[2:])
    config = gather_module.gather_config(rows, width, 4)
    assert rows % config.block_rows and width % config.block_cols
    args = PAIRS["cross_entropy.triton"].inputs(Maker(device, torch.float32, 0))
    rows, cols = args.args[0].shape
    ce = cross_entropy_module.cross_entropy_config(rows, cols, 4)
    assert rows % ce.block_rows and cols % ce.block_cols
    assert torch.equal(gather_triton(tensor, indices), gather_loop(tensor, indices))
