"""Numbers, times, sizes, dtypes, tensors and callables as they appear in messages."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch


def fmt(value: Any) -> str:
    """A number short enough for a message, exact enough to compare by eye."""
    if isinstance(value, bool) or value is None:
        return str(value)
    if isinstance(value, complex):
        return f"{value.real:.8g}{value.imag:+.8g}j"
    if isinstance(value, float):
        if math.isnan(value) or math.isinf(value):
            return str(value)
        return f"{value:.8g}"
    return str(value)


def fmt_time(seconds: float | None) -> str:
    """``1.23 ms``; a dash for None or a non-finite value."""
    if seconds is None or not math.isfinite(seconds):
        return "-"
    for unit, scale in (("s", 1.0), ("ms", 1e-3), ("us", 1e-6)):
        if seconds >= scale:
            return f"{seconds / scale:.3g} {unit}"
    return f"{seconds / 1e-9:.3g} ns"


def fmt_bytes(nbytes: int | None) -> str:
    """``1.5 MiB``; ``unknown`` for None."""
    if nbytes is None:
        return "unknown"
    if nbytes >= 2**20:
        return f"{nbytes / 2**20:.1f} MiB"
    if nbytes >= 2**10:
        return f"{nbytes / 2**10:.1f} KiB"
    return f"{nbytes} B"


def dtype_name(dtype: object) -> str:
    """``torch.float32`` -> ``"float32"``, for messages; any dtype, no validation."""
    return str(dtype).removeprefix("torch.")


def describe_tensor(t: torch.Tensor) -> str:
    """``shape (4, 10), float32, cpu``."""
    return f"shape {tuple(t.shape)}, {dtype_name(t.dtype)}, {t.device}"


def callable_name(fn: Any) -> str:
    """A callable's short name: ``fast`` rather than ``test_x.<locals>.fast``."""
    name = getattr(fn, "__qualname__", None) or getattr(fn, "__name__", None)
    if name is None:
        name = type(fn).__name__
    return str(name).rsplit("<locals>.", 1)[-1]
