"""The validated arguments of one equivalence check.

A bad argument is a TypeError or ValueError naming the argument, the value and
what is accepted; :func:`check_options` raises it before any user code runs.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..compiling import CompileSettings, check_compile_options, check_variant
from ..dtypes import to_torch_dtype
from ..inputs import (
    Args,
    Inputs,
    as_args,
    check_argument_keys,
    check_named_arguments,
    input_tensors,
    is_builder,
    map_args,
)
from .tolerance import Tolerance

if TYPE_CHECKING:
    import torch

ParamMap = Mapping[str, str] | Callable[[dict[str, Any]], Mapping[str, Any]]

#: Random-value trials per check unless told otherwise.
DEFAULT_TRIALS = 3


@dataclass(frozen=True)
class CheckOptions:
    """Everything one check needs besides the two callables."""

    device: torch.device
    dtype: torch.dtype
    seed: int
    tolerance: Tolerance
    check_grad: bool
    mutates: frozenset[int | str]
    param_map: ParamMap | None
    #: random-value trials (before the layout and magnitude trials)
    trials: int
    rerun: str
    #: the builder ``inputs(make)``, or None for fixed inputs
    builder: Callable[..., Any] | None
    #: fixed inputs, copied to the device and dtype (None with a builder)
    given: Args | None
    #: run torch.library.opcheck on the first trials' inputs (custom-op candidates)
    opcheck: bool = False
    #: arguments kept out of the gradients (running statistics, masks, constants)
    no_grad: frozenset[int | str] = frozenset()
    #: how the candidate is compiled (variant ``compile``); None: eager
    compiling: CompileSettings | None = None

    @property
    def truth_device(self) -> torch.device:
        """Where the float64 truth is computed: devices without float64 (MPS) use the CPU."""
        import torch

        return torch.device("cpu") if self.device.type == "mps" else self.device

    @property
    def separate_truth(self) -> bool:
        """False when the reference run itself is the truth (float64 tests)."""
        import torch

        return self.dtype != torch.float64 or self.truth_device != self.device


def check_number(name: str, value: Any) -> float | None:
    """A finite number >= 0 as a float, or None."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{name} must be a number or None, got {type(value).__name__} {value!r}")
    value = float(value)
    if not (value >= 0 and math.isfinite(value)):
        raise ValueError(f"{name} must be a finite number >= 0, got {value!r}")
    return value


def check_seed(seed: Any) -> int:
    """The seed, 0 when None; ValueError outside [0, 2**32)."""
    if seed is None:
        return 0
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed < 2**32:
        raise ValueError(f"seed must be an integer in [0, 2**32), got {seed!r}")
    return seed


def check_inputs(inputs: Any) -> None:
    """``inputs`` is a tuple, list, :class:`Args` or builder; TypeError otherwise."""
    if not is_builder(inputs) and not isinstance(inputs, (tuple, list, Args)):
        raise TypeError(
            "inputs must be a tuple of arguments, Args(*args, **kwargs), or a builder "
            f"inputs(make); got {type(inputs).__name__} (wrap a single tensor as (x,))"
        )


def check_callable(role: str, fn: Any) -> None:
    if not callable(fn):
        raise TypeError(f"{role} must be callable (a function or an nn.Module), got {type(fn).__name__}")


def check_dtype(dtype: Any) -> torch.dtype | None:
    import torch

    if dtype is None or isinstance(dtype, torch.dtype):
        return dtype
    if isinstance(dtype, str):
        return to_torch_dtype(dtype)
    raise TypeError(f"dtype must be a torch.dtype, a name such as 'float32', or None; got {dtype!r}")


def check_device(device: Any) -> torch.device | None:
    import torch

    if device is None or isinstance(device, torch.device):
        return device
    if isinstance(device, str):
        try:
            return torch.device(device)
        except RuntimeError as exc:
            raise ValueError(f"invalid device {device!r}: {exc}") from None
    raise TypeError(f"device must be a torch.device, a string such as 'cpu', or None; got {device!r}")


def check_param_map(param_map: Any) -> ParamMap | None:
    if param_map is None or isinstance(param_map, Mapping) or callable(param_map):
        return param_map
    raise TypeError(
        "param_map must be a dict {candidate parameter name: reference parameter name} "
        f"or a callable mapping the reference's gradients by name; got {type(param_map).__name__}"
    )


def check_trials(trials: Any) -> int:
    if trials is None:
        return DEFAULT_TRIALS
    if isinstance(trials, bool) or not isinstance(trials, int) or trials < 1:
        raise ValueError(f"trials must be a positive integer, got {trials!r}")
    return trials


def check_options(
    candidate: Any,
    reference: Any,
    inputs: Inputs,
    *,
    device: Any,
    dtype: Any,
    seed: Any,
    atol: Any,
    rtol: Any,
    check_grad: Any,
    mutates: Any,
    param_map: Any,
    trials: Any,
    rerun: str | None,
    no_grad: Any = (),
    opcheck: Any = None,
    variant: Any = "eager",
    compile_options: Any = None,
) -> CheckOptions:
    """Validate every argument; fixed inputs are copied to the device and dtype."""
    import torch

    check_callable("candidate", candidate)
    check_callable("reference", reference)
    check_inputs(inputs)
    device = check_device(device)
    dtype = check_dtype(dtype)
    if not isinstance(check_grad, bool):
        raise TypeError(f"check_grad must be True or False, got {check_grad!r}")
    trials = check_trials(trials)
    seed = check_seed(seed)
    from .opcheck import check_opcheck

    run_opcheck = check_opcheck(opcheck, candidate)
    variant = check_variant(variant)
    # Validated in either variant: a test run eager and compiled passes the same arguments.
    compile_settings = check_compile_options(compile_options)
    compiling = compile_settings if variant == "compile" else None

    given = None
    if not is_builder(inputs):
        # Fixed inputs default to their own device and floating dtype.
        args = as_args(inputs)
        tensors = [t for _, _, t in input_tensors(args)]
        if device is None:
            device = tensors[0].device if tensors else torch.device("cpu")
        if dtype is None:
            floats = [t.dtype for t in tensors if t.dtype.is_floating_point]
            dtype = floats[0] if floats else torch.float32
        target_device, target_dtype = device, dtype
        given = map_args(
            args,
            lambda t: t.detach()
            .to(device=target_device, dtype=target_dtype if t.dtype.is_floating_point else t.dtype)
            .clone(),
        )
    mutates = check_argument_keys("mutates", mutates)
    no_grad = check_argument_keys("no_grad", no_grad)
    if given is not None:
        check_named_arguments(given, mutates=mutates, no_grad=no_grad)
    device = device if device is not None else torch.device("cpu")
    dtype = dtype if dtype is not None else torch.float32
    if not dtype.is_floating_point:
        raise ValueError(f"dtype must be a floating dtype, got {dtype}")
    rerun = rerun or (
        "rerun: assert_same_as_reference(candidate, reference, inputs, "
        f"device={str(device)!r}, dtype={dtype}, seed={seed}"
        + (f", trials={trials}" if trials != DEFAULT_TRIALS else "")
        + ("" if check_grad else ", check_grad=False")
        + "".join(
            f", {option}={tuple(sorted(names, key=str))!r}"
            for option, names in (("mutates", mutates), ("no_grad", no_grad))
            if names
        )
        + (", variant='compile'" if compiling is not None else "")
        + ")"
    )
    return CheckOptions(
        device=device,
        dtype=dtype,
        seed=seed,
        tolerance=Tolerance(check_number("atol", atol), check_number("rtol", rtol)),
        check_grad=check_grad,
        mutates=mutates,
        no_grad=no_grad,
        param_map=check_param_map(param_map),
        trials=trials,
        rerun=rerun,
        builder=inputs if is_builder(inputs) else None,  # type: ignore[arg-type]
        given=given,
        opcheck=run_opcheck,
        compiling=compiling,
    )
