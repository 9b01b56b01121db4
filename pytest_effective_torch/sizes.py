"""Size sweeps: the grid of size keywords a builder is called with, and sizes worth sweeping.

A builder may take keyword-only size arguments, ``inputs(make, *, n)``; both
engines accept ``sizes={"n": [1, 16, 64, 100]}`` and call the builder once
per point of the grid. Several keys give the grid of their product, first
key outermost; a point is named ``n=64`` or ``m=8,n=64`` (keys in the order
given). Values are integers >= 0, sorted and deduplicated per key, so every
curve runs from small to large and bisection between two sizes is defined.

Bad sizes, or a builder that does not take the keys, are the caller's
TypeError or ValueError, raised before any user code runs.
"""

from __future__ import annotations

import inspect
import itertools
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from .formatting import callable_name
from .inputs import Args, Builder, Maker, derive_seed, is_builder

#: ``sizes=`` as callers write it: size keyword -> the values to sweep.
Sizes = Mapping[str, Sequence[int]]


@dataclass(frozen=True)
class Point:
    """One point of a sweep: a value for every size keyword, in the grid's key order."""

    items: tuple[tuple[str, int], ...]

    @property
    def kwargs(self) -> dict[str, int]:
        return dict(self.items)

    @property
    def label(self) -> str:
        """``n=64``, or ``m=8,n=64`` with several keys."""
        return ",".join(f"{key}={value}" for key, value in self.items)

    def __getitem__(self, key: str) -> int:
        return self.kwargs[key]

    def replace(self, key: str, value: int) -> Point:
        """This point with ``key`` set to ``value`` (the other keys held)."""
        return Point(tuple((k, value if k == key else v) for k, v in self.items))

    def __str__(self) -> str:
        return self.label


@dataclass(frozen=True)
class Grid:
    """The validated ``sizes=``: keys in the caller's order, each with sorted unique values."""

    keys: tuple[str, ...]
    values: tuple[tuple[int, ...], ...]

    def points(self) -> list[Point]:
        """Every point of the product, first key outermost, values ascending."""
        return [Point(tuple(zip(self.keys, combo, strict=True))) for combo in itertools.product(*self.values)]

    def __len__(self) -> int:
        count = 1
        for values in self.values:
            count *= len(values)
        return count

    def describe(self) -> str:
        """``n=[1, 16, 64, 100]``; ``m=[4, 8] x n=[16, 64]`` for a grid."""
        return " x ".join(f"{key}={list(values)}" for key, values in zip(self.keys, self.values, strict=True))

    def as_dict(self) -> dict[str, list[int]]:
        """``sizes=`` as it could be written again (for rerun lines)."""
        return {key: list(values) for key, values in zip(self.keys, self.values, strict=True)}


def check_sizes(sizes: Any) -> Grid:
    """Validate ``sizes=``: a dict of keyword names to lists of integers >= 0.

    >>> check_sizes({"n": [64, 1, 16, 16]}).describe()
    'n=[1, 16, 64]'
    """
    if not isinstance(sizes, Mapping):
        raise TypeError(
            f"sizes must be a dict of size keyword to a list of integers, such as "
            f"sizes={{'n': [1, 16, 64]}}; got {type(sizes).__name__} {sizes!r}"
        )
    if not sizes:
        raise ValueError("sizes must name at least one size keyword, such as sizes={'n': [1, 16, 64]}")
    keys: list[str] = []
    values: list[tuple[int, ...]] = []
    for key, given in sizes.items():
        if not isinstance(key, str) or not key.isidentifier():
            raise TypeError(f"sizes keys must be keyword names such as 'n', got {key!r}")
        if isinstance(given, (str, bytes)) or not isinstance(given, Sequence):
            raise TypeError(
                f"sizes[{key!r}] must be a list of integers, got {type(given).__name__} {given!r}"
                + (f"; write [{given}]" if isinstance(given, int) and not isinstance(given, bool) else "")
            )
        if not given:
            raise ValueError(f"sizes[{key!r}] is empty: give at least one size")
        for value in given:
            if isinstance(value, bool) or not isinstance(value, int):
                raise TypeError(f"sizes[{key!r}] must hold integers, got {value!r} in {list(given)!r}")
            if value < 0:
                raise ValueError(f"sizes[{key!r}] must hold integers >= 0, got {value} in {list(given)!r}")
        keys.append(key)
        values.append(tuple(sorted(set(given))))
    return Grid(tuple(keys), tuple(values))


# ------------------------------------------------------------ builders


def _signature(fn: Callable[..., Any]) -> inspect.Signature | None:
    try:
        return inspect.signature(fn)
    except (TypeError, ValueError):  # some builtins and C callables have none
        return None


def _keywords(sig: inspect.Signature, skip_first: bool) -> tuple[list[str], list[str], bool]:
    """(keywords it accepts, keywords it requires, takes **kwargs) of ``sig``."""
    params = list(sig.parameters.values())
    if skip_first and params and params[0].kind in (params[0].POSITIONAL_ONLY, params[0].POSITIONAL_OR_KEYWORD):
        params = params[1:]
    accepted = [p.name for p in params if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]
    required = [p.name for p in params if p.kind == p.KEYWORD_ONLY and p.default is p.empty]
    var_keyword = any(p.kind == p.VAR_KEYWORD for p in params)
    return accepted, required, var_keyword


def _described(fn: Callable[..., Any], sig: inspect.Signature) -> str:
    return f"{callable_name(fn)}{sig}"


def check_sweep_inputs(inputs: Any, grid: Grid) -> None:
    """``inputs`` must be a builder that takes every key of ``grid`` as a keyword.

    Fixed inputs cannot change size, a builder without the keywords would
    crash at the first point, and one that needs a keyword the grid lacks
    likewise: each is a TypeError naming the builder's parameters.
    """
    if not is_builder(inputs):
        raise TypeError(
            "sizes= needs a builder that takes the size keywords, such as "
            f"inputs(make, *, {', '.join(grid.keys)}); got fixed inputs ({type(inputs).__name__}), "
            "which cannot change size"
        )
    sig = _signature(inputs)
    if sig is None:
        return
    accepted, required, var_keyword = _keywords(sig, skip_first=True)
    described = _described(inputs, sig)
    if not accepted and not var_keyword:
        raise TypeError(
            f"sizes= gives {', '.join(grid.keys)}, but the inputs builder {described} takes no "
            f"size keywords; write it as {callable_name(inputs)}(make, *, {', '.join(grid.keys)})"
        )
    unknown = [key for key in grid.keys if key not in accepted]
    if unknown and not var_keyword:
        raise TypeError(
            f"sizes= names {', '.join(unknown)}, which the inputs builder {described} does not take; "
            f"its size keywords: {', '.join(accepted)}"
        )
    missing = [key for key in required if key not in grid.keys]
    if missing:
        raise TypeError(
            f"the inputs builder {described} needs the size keyword(s) {', '.join(missing)}, "
            f"which sizes= does not give (it gives {', '.join(grid.keys)})"
        )


def check_unswept_inputs(inputs: Any) -> None:
    """Without ``sizes=``, a builder must not require size keywords: say so before calling it."""
    if not is_builder(inputs):
        return
    sig = _signature(inputs)
    if sig is None:
        return
    _, required, _ = _keywords(sig, skip_first=True)
    if required:
        raise TypeError(
            f"the inputs builder {_described(inputs, sig)} takes the size keyword(s) "
            f"{', '.join(required)}: pass sizes={{{', '.join(f'{k!r}: [...]' for k in required)}}}"
        )


def check_size_callable(name: str, fn: Any, grid: Grid) -> None:
    """A per-size argument given as a callable (``nbytes=lambda n: ...``) must take the keys."""
    if not callable(fn):
        return
    sig = _signature(fn)
    if sig is None:
        return
    accepted, required, var_keyword = _keywords(sig, skip_first=False)
    unknown = [key for key in grid.keys if key not in accepted]
    missing = [key for key in required if key not in grid.keys]
    positional = [
        p.name for p in sig.parameters.values()
        if p.kind == p.POSITIONAL_ONLY and p.default is p.empty
    ]  # fmt: skip
    if (unknown and not var_keyword) or missing or positional:
        raise TypeError(
            f"{name} must be a number or a callable of the size keywords "
            f"({', '.join(grid.keys)}), such as {name}=lambda {', '.join(grid.keys)}: ...; "
            f"got {_described(fn, sig)}"
        )


def bind(builder: Callable[..., Any], point: Point) -> Builder:
    """The builder ``make -> builder(make, **point)``, named ``builder[n=64]`` in messages."""

    def bound(make: Maker) -> tuple | Args:
        return builder(make, **point.kwargs)  # type: ignore[no-any-return]

    name = f"{callable_name(builder)}[{point.label}]"
    bound.__name__ = bound.__qualname__ = name
    return bound


def point_seed(seed: int, point: Point) -> int:
    """The seed a point draws its inputs from: the same point gets the same values in any sweep."""
    return derive_seed(seed, "size", point.label)


def at_point(name: str, value: Any, point: Point) -> Any:
    """``value``, or ``value(**point)`` when it is a callable of the size keywords."""
    return value(**point.kwargs) if callable(value) else value


# ------------------------------------------------------------ sizes worth sweeping


def edge_sizes(block: int, up_to: int) -> list[int]:
    """Sizes around the multiples of ``block``, up to ``up_to``: where tiled kernels break.

    1, then ``k * block - 1``, ``k * block`` and ``k * block + 1`` for every
    multiple: a remainder tile of one element, no remainder, one element short.

    >>> edge_sizes(16, 64)
    [1, 15, 16, 17, 31, 32, 33, 47, 48, 49, 63, 64]
    """
    for name, value in (("block", block), ("up_to", up_to)):
        if isinstance(value, bool) or not isinstance(value, int):
            raise TypeError(f"edge_sizes: {name} must be an integer, got {value!r}")
        if value < 1:
            raise ValueError(f"edge_sizes: {name} must be >= 1, got {value}")
    out = {1}
    multiple = block
    while multiple - 1 <= up_to:
        out.update((multiple - 1, multiple, multiple + 1))
        multiple += block
    return sorted(size for size in out if 1 <= size <= up_to)
