"""``assert_faster_than_reference``: the public function.

:mod:`.run` measures, :mod:`.verdict` decides what the measurement means.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from ..errors import skip_test
from ..inputs import Inputs
from ..sizes import Sizes
from .clocks import untimed_reason
from .result import DEFAULT_CONFIDENCE, SpeedResult
from .result import options as make_options
from .run import compare_speed
from .sweep import MinSpeedup, SpeedSweepResult, conclude_sweep, run_sweep, sweep_spec
from .verdict import SpeedInconclusiveWarning, conclude

if TYPE_CHECKING:
    import torch

__all__ = ["SpeedInconclusiveWarning", "SpeedResult", "SpeedSweepResult", "assert_faster_than_reference"]


def assert_faster_than_reference(
    candidate: Callable[..., Any],
    reference: Callable[..., Any],
    inputs: Inputs,
    *,
    min_speedup: MinSpeedup = 1.0,
    device: torch.device | str | None = None,
    backward: bool = False,
    mode: str | Sequence[str] | None = None,
    sizes: Sizes | None = None,
    nbytes: float | Callable[..., float] | None = None,
    flops: float | Callable[..., float] | None = None,
    max_memory_ratio: float | None = None,
    dtype: torch.dtype | None = None,
    seed: int = 0,
    time_budget: float = 2.0,
    threads: int | None = 1,
    timer: str = "device",
    flush_l2: bool = False,
    inconclusive: str = "fail",
    confidence: float = DEFAULT_CONFIDENCE,
    measure_memory: bool | None = None,
    variant: str = "eager",
    compile_options: Mapping[str, Any] | None = None,
    no_grad: Iterable[int | str] | int | str = (),
) -> SpeedResult | SpeedSweepResult:
    """Assert that ``candidate`` is at least ``min_speedup`` times faster than ``reference``.

    Both are called with the same ``inputs``: a tuple of arguments, or a
    builder ``inputs(make)`` that draws seeded tensors on ``device``.
    The forward call is timed (forward plus backward with
    ``backward=True``), in interleaved rounds, until a ``confidence``
    interval for the speedup lies above ``min_speedup`` (returns the
    :class:`SpeedResult`) or below it (raises :class:`CheckFailed`), or
    ``time_budget`` seconds pass without a decision: then ``inconclusive``
    says what happens (``fail``: raise, ``skip``: pytest.skip, ``warn``:
    warn and return).

    ``min_speedup=None`` measures without asserting: the rounds run until
    the interval is precise (or the budget is spent) and the verdict is
    ``measured``, never ``pass``; it is stored and summarized like any
    other comparison, and ``max_memory_ratio`` is still asserted.

    >>> def slow(x):
    ...     return torch.stack([row.sum() for row in x])
    >>> def fast(x):
    ...     return x.sum(dim=1)
    >>> assert_faster_than_reference(fast, slow, (torch.randn(256, 64),), min_speedup=5)
    ... # doctest: +SKIP

    ``max_memory_ratio=0.5`` also asserts that the candidate's peak memory
    is at most half the reference's (measured with the CPU profiler or
    CUDA's allocator statistics; ``measure_memory=True`` reports peaks
    without asserting). ``threads`` pins torch's intra-op threads on the
    CPU while timing; ``timer`` picks CUDA host or device time for the
    verdict (both are reported); ``flush_l2`` flushes the CUDA L2 cache
    before every timed call.

    ``mode`` times ``forward`` (the default), ``backward`` (the backward
    pass alone, through a graph built outside the timed region) or ``full``
    (forward plus backward, as ``backward=True``). ``nbytes``/``flops``
    (per call) add the achieved bytes and FLOP per second to the result.

    ``sizes={"n": [64, 256, 1024]}`` sweeps a builder ``inputs(make, *, n)``:
    one verdict per size (and per mode, when ``mode`` is a list), each at a
    confidence corrected for the number of sizes asserted, so the chance of
    passing any size that is not faster stays that of one verdict.
    ``min_speedup``, ``nbytes`` and ``flops`` may then be callables of the
    size keywords (``min_speedup`` returning None: measured there, not
    asserted). Returns a :class:`SpeedSweepResult`; a failure names the sizes
    that fell short.

    ``variant="compile"`` times ``torch.compile(candidate)`` against the
    eager reference (``compile_options``: torch.compile's ``mode``,
    ``dynamic`` (default False), ``fullgraph``, ``backend``, ``options``).
    The first call, which compiles, is kept out of the rounds and the time
    budget; its seconds are ``result.compile_seconds``.
    """
    __tracebackhide__ = True
    try:
        spec = sweep_spec(inputs, sizes, mode, backward, min_speedup, nbytes, flops)
    except (TypeError, ValueError) as exc:  # a bad argument: the caller's line, not our frames
        raise exc.with_traceback(None) from None
    options = make_options(
        min_speedup=None if spec is not None else min_speedup,
        mode=None if spec is not None else mode,
        nbytes=None if spec is not None else nbytes,
        flops=None if spec is not None else flops,
        device=device,
        dtype=dtype,
        seed=seed,
        backward=backward,
        max_memory_ratio=max_memory_ratio,
        measure_memory=measure_memory,
        time_budget=time_budget,
        threads=threads,
        timer=timer,
        flush_l2=flush_l2,
        inconclusive=inconclusive,
        confidence=confidence,
        variant=variant,
        compile_options=compile_options,
        no_grad=no_grad,
    )
    untimed = untimed_reason()
    if spec is not None:
        sweep = run_sweep(candidate, reference, inputs, options, spec, measure=untimed is None)
        if untimed is not None:
            skip_test(f"speed sweep skipped: {untimed}; candidate and reference each ran once per size")
        return conclude_sweep(sweep, options)
    result = compare_speed(candidate, reference, inputs, options, measure=untimed is None)
    if untimed is not None:
        skip_test(f"speed verdict skipped: {untimed}; candidate and reference each ran once")
    return conclude(result, options)
