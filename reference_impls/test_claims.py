"""The guide's claims, checked by pytest-effective-torch; generated from the registry.

Every test here is parametrized over ``PAIRS``, ``FITS`` or ``CLAIMS``;
nothing is written out per op. The plugin multiplies each over the
selected devices and dtypes (``--device``, ``--dtype``), and the suite's
conftest drops the dtypes a pair does not support. Run it with
``python -m reference_impls`` for the table of claims at the end.

With ``--effective-torch-variants=eager,compile`` the equivalence and speed
tests also run ``torch.compile`` of each candidate that has
``compile_inputs``, on those (small) inputs, against the eager reference;
compiled speedups are measured and reported, not asserted (the guide's
claims are about eager code).
"""

from __future__ import annotations

import re
from typing import Any

import pytest
import torch

from pytest_effective_torch import Args, CheckFailed, Maker
from reference_impls import ALL_DTYPES, CLAIMS, FITS, PAIRS, Claim, Fit, Pair
from reference_impls._suite import record

pytestmark = [
    # Every dtype any pair supports; conftest narrows each item to its pair's.
    pytest.mark.dtypes(*ALL_DTYPES),
    # Importing parts of torch that define TorchScript classes warns that
    # TorchScript is deprecated: torch talking to itself.
    pytest.mark.filterwarnings(r"ignore:`torch\.jit\.\w+` is deprecated:DeprecationWarning"),
]

def _ids(value: Any) -> str:
    return str(getattr(value, "id", None) or value.name)


def _claims(kind: str) -> list[Claim]:
    return [c for c in CLAIMS if c.kind == kind]


def _build(inputs: Any, device: torch.device, dtype: torch.dtype, seed: int) -> Args:
    args = inputs(Maker(device, dtype, seed)) if callable(inputs) else inputs
    return args if isinstance(args, Args) else Args(*args)


EQUIVALENCE = [
    pytest.param(
        pair,
        id=pair.name,
        # The broadcasting trap is wrong on purpose: the check must fail.
        marks=[pytest.mark.xfail(raises=CheckFailed, strict=True, reason=pair.note)]
        if pair.expected_failure
        else [],
    )
    for pair in PAIRS.values()
]


@pytest.mark.parametrize("pair", EQUIVALENCE)
def test_same_as_reference(
    pair: Pair,
    device: torch.device,
    dtype: torch.dtype,
    seed: int,
    variant: str,
    assert_same_as_reference: Any,
    request: Any,
) -> None:
    """Outputs and gradients of the candidate match the reference's (compiled: on ``compile_inputs``)."""
    candidate, reference = pair.bind(device, dtype)
    kwargs: dict[str, Any] = dict(pair.check_kwargs)
    if pair.param_map is not None:
        kwargs["param_map"] = pair.param_map
    inputs = pair.compile_inputs if variant == "compile" else pair.inputs
    report = assert_same_as_reference(
        candidate, reference, inputs, device=device, dtype=dtype, **kwargs
    )
    text = _report_text(report)
    if pair.exact and variant == "eager":  # compiled code may fuse and round differently
        # Equal within tolerance of the float64 truth, and also bitwise
        # equal to the reference in the test's own dtype.
        args = _build(pair.inputs, device, dtype, seed)
        got = candidate(*args.args, **args.kwargs)
        want = reference(*args.args, **args.kwargs)
        assert torch.equal(got, want), f"{pair.name} is not bitwise equal to its reference"
        text += ", bitwise equal"
    record(request, text)


def _report_text(report: Any) -> str:
    """Trials run, the closest any comparison came to its tolerance, and compile time."""
    worst = getattr(report, "worst", None)
    text = f"{len(getattr(report, 'trials', ()))} trials"
    if worst is not None:
        text += f", worst {100 * worst.ratio:.2g}% of tol"
    compiled = [n for n in getattr(report, "notes", ()) if n.startswith("compile: ")]
    if compiled:
        text += "; " + compiled[0].split(" (torch.compile")[0]
    return text


@pytest.mark.parametrize(
    "pair", [p for p in PAIRS.values() if p.expected_failure], ids=lambda p: p.name
)
def test_trap_is_caught_with_its_message(
    pair: Pair,
    device: torch.device,
    dtype: torch.dtype,
    assert_same_as_reference: Any,
    request: Any,
) -> None:
    """The plugin rejects the wrong candidate, and its message says why."""
    candidate, reference = pair.bind(device, dtype)
    with pytest.raises(CheckFailed, match=pair.expected_failure) as info:
        assert_same_as_reference(candidate, reference, pair.inputs, device=device, dtype=dtype)
    found = re.search(pair.expected_failure, str(info.value))
    record(request, found.group(0) if found else "")


@pytest.mark.parametrize(
    "pair",
    [p for p in PAIRS.values() if p.differentiable and not p.expected_failure],
    ids=lambda p: p.name,
)
def test_gradcheck(pair: Pair, device: torch.device, gradcheck: Any, request: Any) -> None:
    """The candidate's gradients match finite differences (float64 copies)."""
    candidate, _ = pair.bind(device, torch.float64)
    gradcheck(
        candidate,
        pair.small_inputs or pair.inputs,
        check_gradgrad=pair.twice_differentiable,
    )
    record(request, "gradgradcheck too" if pair.twice_differentiable else "first order")


@pytest.mark.parametrize("claim", _claims("stabler"), ids=_ids)
def test_stabler(
    claim: Claim,
    device: torch.device,
    dtype: torch.dtype,
    seed: int,
    assert_same_as_reference: Any,
    request: Any,
) -> None:
    """At the guide's hostile inputs the naive version is non-finite, the candidate exact."""
    pair = PAIRS[claim.subject]
    candidate, reference = pair.bind(device, dtype)
    args = _build(claim.inputs, device, dtype, seed)

    naive = reference(*args.args, **args.kwargs)
    assert not torch.isfinite(naive).all(), f"the naive version stayed finite: {naive}"

    if claim.expected_grad is not None:
        args.args[claim.grad_arg].requires_grad_(True)
    out = candidate(*args.args, **args.kwargs)
    assert torch.isfinite(out).all(), f"the stable version is not finite: {out}"
    expected = torch.tensor(claim.expected, device=device, dtype=dtype).reshape(out.shape)
    torch.testing.assert_close(out.detach(), expected)
    measured = f"naive {_values(naive)}, candidate {_values(out)}"
    if claim.expected_grad is not None:
        (grad,) = torch.autograd.grad(out.sum(), args.args[claim.grad_arg])
        torch.testing.assert_close(
            grad, torch.tensor(claim.expected_grad, device=device, dtype=dtype)
        )
        measured += f", grad {_values(grad)}"

    # The plugin sees it too: the naive version as a candidate is rejected.
    with pytest.raises(CheckFailed, match="non-finite"):
        assert_same_as_reference(reference, candidate, claim.inputs, device=device, dtype=dtype)
    record(request, measured + "; plugin flags naive as non-finite")


def _values(t: torch.Tensor) -> str:
    values = t.detach().float().flatten().tolist()
    return "[" + ", ".join(f"{v:g}" for v in values) + "]" if t.dim() else f"{values[0]:g}"


@pytest.mark.parametrize("claim", _claims("faster"), ids=_ids)
def test_faster(
    claim: Claim,
    device: torch.device,
    dtype: torch.dtype,
    variant: str,
    assert_faster_than_reference: Any,
    request: Any,
) -> None:
    """The candidate is at least ``min_speedup`` times faster (or just measured)."""
    pair = PAIRS[claim.subject]
    if variant == "compile":
        _compiled_speed(claim, pair, device, dtype, assert_faster_than_reference, request)
        return
    candidate, reference = claim.bind(pair, device, dtype)
    inputs = claim.inputs or pair.large_inputs or pair.inputs
    wanted = claim.min_speedup_on(device.type)
    if claim.sizes:
        sweep = assert_faster_than_reference(
            candidate,
            reference,
            inputs,
            min_speedup=wanted,  # per size; None there: measured, not asserted
            backward=claim.backward,
            sizes=dict(claim.sizes),
            mode=list(claim.modes) if claim.modes else None,
            nbytes=claim.nbytes,
            flops=claim.flops,
        )
        record(request, _sweep_text(sweep), asserted=sweep.asserted > 0)
        return
    result = assert_faster_than_reference(
        candidate,
        reference,
        inputs,
        min_speedup=wanted,  # None: measured and reported, not asserted
        backward=claim.backward,
    )
    text = result.speedup_text() + (f" (needs {wanted:g}x)" if wanted else " (reported)")
    record(request, text, asserted=wanted is not None)


def _compiled_speed(claim: Claim, pair: Pair, device: torch.device, dtype: torch.dtype, check: Any, request: Any) -> None:
    """Under the compile variant: torch.compile(candidate) vs the eager reference on ``compile_inputs``.

    Measured and reported, never asserted: the guide's numbers are for
    eager code, and small inputs time overheads more than kernels.
    """
    candidate, reference = pair.bind(device, dtype)
    result = check(candidate, reference, pair.compile_inputs, min_speedup=None, backward=claim.backward)
    record(request, f"{result.speedup_text()} (reported); compile {result.compile_seconds:.1f} s apart", asserted=False)


def _sweep_text(sweep: Any) -> str:
    """``batch=1: 0.7x, 4: 2.1x, ... 1024: 95x (needs 10x from 256)``, one part per mode."""
    parts = []
    for mode in sweep.modes:
        points = [p for p in sweep.points if p.mode == mode]
        key = sweep.grid.keys[-1]
        speeds = ", ".join(
            f"{p.point.label if i == 0 else p.point[key]}: {p.result.speedup:.2g}x" for i, p in enumerate(points)
        )
        asserted = [p for p in points if p.result.min_speedup is not None]
        if asserted:
            needs = sorted({p.result.min_speedup for p in asserted})
            speeds += f" (needs {'/'.join(f'{n:g}' for n in needs)}x from {asserted[0].point[key]})"
        parts.append((f"{mode} " if len(sweep.modes) > 1 else "") + speeds)
    return "; ".join(parts)


@pytest.mark.parametrize("claim", [c for c in _claims("equal") if c.sizes], ids=_ids)
def test_same_across_sizes(
    claim: Claim,
    device: torch.device,
    dtype: torch.dtype,
    assert_same_as_reference: Any,
    request: Any,
) -> None:
    """The candidate matches the reference at every size of the claim's sweep."""
    pair = PAIRS[claim.subject]
    candidate, reference = claim.bind(pair, device, dtype)
    report = assert_same_as_reference(
        candidate, reference, claim.inputs, sizes=dict(claim.sizes or {}), device=device, dtype=dtype,
        **pair.check_kwargs,
    )  # fmt: skip
    record(request, f"{len(report.points)} sizes, {report.trials_per_point} trials each")


@pytest.mark.parametrize("claim", _claims("less_memory"), ids=_ids)
def test_less_memory(
    claim: Claim,
    device: torch.device,
    dtype: torch.dtype,
    assert_faster_than_reference: Any,
    request: Any,
) -> None:
    """Peak memory of the candidate is at most ``max_memory_ratio`` of the reference's."""
    pair = PAIRS[claim.subject]
    candidate, reference = claim.bind(pair, device, dtype)
    result = assert_faster_than_reference(
        candidate,
        reference,
        claim.inputs or pair.large_inputs or pair.inputs,
        min_speedup=None,  # the memory ratio is asserted; the speed only measured
        backward=claim.backward,
        max_memory_ratio=claim.max_memory_ratio,
    )
    ref, cand = result.peak_memory
    if cand is not None and ref:
        record(
            request,
            f"peak {cand / 2**20:.1f} MiB vs {ref / 2**20:.1f} MiB "
            f"({cand / ref:.2f}, needs <= {claim.max_memory_ratio:g})",
        )


@pytest.mark.parametrize("claim", _claims("fits"), ids=_ids)
def test_fits(claim: Claim, device: torch.device, dtype: torch.dtype, request: Any) -> None:
    """Training from a fixed seed recovers the coefficients within the stated tolerances."""
    fit: Fit = FITS[claim.subject]
    fitted = fit.run(device, dtype, 0)
    record(request, ", ".join(f"{k}={v:.4g}" for k, v in fitted.items()))
    misses = fit.misses(fitted)
    assert not misses, f"{fit.name} on {device} in {dtype}: " + "; ".join(misses)
