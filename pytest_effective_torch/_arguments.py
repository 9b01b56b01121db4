"""Validation of the engine's arguments and of the tolerance marker.

A bad argument is a TypeError or ValueError naming the argument, the value and
what is accepted; a bad marker is a pytest.UsageError naming the marker.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch


def _check_number(name: str, value: Any) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{name} must be a number or None, got {type(value).__name__} {value!r}")
    value = float(value)
    if not (value >= 0 and math.isfinite(value)):
        raise ValueError(f"{name} must be a finite number >= 0, got {value!r}")
    return value


def _check_seed(seed: Any) -> int:
    """The seed, 0 when None; ValueError outside [0, 2**32)."""
    if seed is None:
        return 0
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed < 2**32:
        raise ValueError(f"seed must be an integer in [0, 2**32), got {seed!r}")
    return seed


def _check_inputs(inputs: Any) -> None:
    """``inputs`` is a tuple, list, :class:`Args` or builder; TypeError otherwise."""
    from ._inputs import Args, is_builder

    if not is_builder(inputs) and not isinstance(inputs, (tuple, list, Args)):
        raise TypeError(
            "inputs must be a tuple of arguments, Args(*args, **kwargs), or a builder "
            f"inputs(make); got {type(inputs).__name__} (wrap a single tensor as (x,))"
        )


def _check_dtype(dtype: Any) -> torch.dtype | None:
    import torch

    if dtype is None or isinstance(dtype, torch.dtype):
        return dtype
    if isinstance(dtype, str):
        from ._dtypes import to_torch_dtype

        return to_torch_dtype(dtype)
    raise TypeError(f"dtype must be a torch.dtype, a name such as 'float32', or None; got {dtype!r}")


def _check_device(device: Any) -> torch.device | None:
    import torch

    if device is None or isinstance(device, torch.device):
        return device
    if isinstance(device, str):
        try:
            return torch.device(device)
        except RuntimeError as exc:
            raise ValueError(f"invalid device {device!r}: {exc}") from None
    raise TypeError(f"device must be a torch.device, a string such as 'cpu', or None; got {device!r}")


def _check_mutates(mutates: Any) -> frozenset[int | str]:
    if isinstance(mutates, (int, str)) and not isinstance(mutates, bool):
        mutates = (mutates,)
    if not isinstance(mutates, Iterable):
        raise TypeError(f"mutates must be argument positions and/or keyword names, got {mutates!r}")
    out: set[int | str] = set()
    for item in mutates:
        if isinstance(item, bool) or not isinstance(item, (int, str)):
            raise TypeError(f"mutates must hold argument positions (int) or keyword names (str), got {item!r}")
        if isinstance(item, int) and item < 0:
            raise ValueError(f"mutates: argument positions count from 0, got {item}")
        out.add(item)
    return frozenset(out)



_TOLERANCE_KEYS = ("atol", "rtol")


def tolerance_from_marker(node: Any) -> dict[str, float]:
    """atol/rtol from ``@pytest.mark.tolerance``; a bad marker is a UsageError naming it."""
    import pytest

    mark = node.get_closest_marker("tolerance")
    if mark is None:
        return {}
    where = f"@pytest.mark.tolerance in {node.nodeid}"
    if mark.args:
        raise pytest.UsageError(f"Invalid {where}: takes keyword arguments atol= and rtol= only, got {mark.args!r}")
    unknown = [k for k in mark.kwargs if k not in _TOLERANCE_KEYS]
    if unknown:
        raise pytest.UsageError(f"Invalid {where}: unknown argument(s) {unknown}; accepted: atol, rtol")
    out = {}
    for key, value in mark.kwargs.items():
        try:
            number = _check_number(key, value)
        except (TypeError, ValueError) as exc:
            raise pytest.UsageError(f"Invalid {where}: {exc}") from None
        if number is not None:
            out[key] = number
    return out
