"""Dtype names accepted on the command line, checked without importing torch."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch

#: Names accepted by ``--dtype``; each is an attribute of ``torch``.
DTYPE_NAMES: tuple[str, ...] = (
    "float32",
    "float64",
    "float16",
    "bfloat16",
    "complex64",
    "complex128",
    "int8",
    "int16",
    "int32",
    "int64",
    "uint8",
    "bool",
)

_ALIASES = {
    "float": "float32",
    "double": "float64",
    "half": "float16",
    "cfloat": "complex64",
    "cdouble": "complex128",
    "long": "int64",
    "int": "int32",
    "short": "int16",
}


def canonical_dtype_name(name: str) -> str:
    """``"torch.float"`` or ``"float"`` -> ``"float32"``; ValueError for unknown names."""
    key = name.strip().lower().removeprefix("torch.")
    key = _ALIASES.get(key, key)
    if key not in DTYPE_NAMES:
        raise ValueError(
            f"unknown dtype {name!r}; valid: {', '.join(DTYPE_NAMES)}"
        )
    return key


def to_torch_dtype(name: str) -> torch.dtype:
    import torch

    return getattr(torch, canonical_dtype_name(name))
