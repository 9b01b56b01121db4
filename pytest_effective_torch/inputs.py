"""Seeded tensor factories and the ``inputs`` forms every check accepts.

``inputs`` is either a tuple of positional arguments or a builder
``inputs(make)``; a builder returns a tuple, or :class:`Args` when it needs
keyword arguments too. ``make`` is a :class:`Maker`: it draws tensors with
``torch.testing.make_tensor`` from its own seed, on the CPU (so the values do
not depend on the device), then moves them to the bound device.
"""

from __future__ import annotations

import functools
import zlib
from collections.abc import Callable, Collection, Iterable, Sequence
from typing import TYPE_CHECKING, Any, Union

from . import tree
from .errors import with_context

if TYPE_CHECKING:
    import torch

_MAX_SEED = 2**32 - 1


class Args:
    """Positional and keyword arguments, for builders that need keywords.

    >>> def inputs(make):
    ...     return Args(make(4, 10), dim=1)
    """

    __slots__ = ("args", "kwargs")

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.args = tuple(args)
        self.kwargs = dict(kwargs)

    def __repr__(self) -> str:
        parts = [repr(a) for a in self.args]
        parts += [f"{k}={v!r}" for k, v in self.kwargs.items()]
        return f"Args({', '.join(parts)})"

    def __eq__(self, other: object) -> bool:
        return (
            isinstance(other, Args)
            and self.args == other.args
            and self.kwargs == other.kwargs
        )

    __hash__ = None  # type: ignore[assignment]


def arg_items(args: Args) -> list[tuple[int | str, Any]]:
    """``(key, value)`` per argument: positions for positional ones, names for keywords."""
    return [*enumerate(args.args), *args.kwargs.items()]


def arg_value(args: Args, key: int | str) -> Any:
    return args.args[key] if isinstance(key, int) else args.kwargs[key]


def arg_label(key: int | str) -> str:
    """``input 0`` or ``input 'dim'``: how messages name an argument."""
    return f"input {key}" if isinstance(key, int) else f"input {key!r}"


def map_args(args: Args, fn: Callable[[Any], Any], skip: Collection[int | str] = ()) -> Args:
    """``args`` with ``fn(t)`` in place of every tensor, nested ones included; sharing kept.

    The arguments whose keys (positions, keyword names) are in ``skip`` are kept as they are.
    """
    memo: dict[int, Any] = {}

    def one(key: int | str, value: Any) -> Any:
        return value if key in skip else tree.map_tensors(value, fn, memo)

    out = Args(*(one(i, a) for i, a in enumerate(args.args)))
    out.kwargs = {k: one(k, v) for k, v in args.kwargs.items()}
    return out


def input_tensors(args: Args) -> list[tuple[int | str, str, torch.Tensor]]:
    """``(argument key, path, tensor)`` for every tensor argument, nested ones included."""
    return [
        (key, arg_label(key) + sub, tensor)
        for key, value in arg_items(args)
        for sub, tensor in tree.tensors(value)
    ]


def check_argument_keys(option: str, keys: Any) -> frozenset[int | str]:
    """``mutates=`` / ``no_grad=``: argument positions and keyword names, one or several."""
    if isinstance(keys, bool):
        raise TypeError(f"{option} names arguments (positions and/or keyword names), got {keys!r}")
    if isinstance(keys, (int, str)):
        keys = (keys,)
    if not isinstance(keys, Iterable):
        raise TypeError(f"{option} must be argument positions and/or keyword names, got {keys!r}")
    out: set[int | str] = set()
    for item in keys:
        if isinstance(item, bool) or not isinstance(item, (int, str)):
            raise TypeError(f"{option} must hold argument positions (int) or keyword names (str), got {item!r}")
        if isinstance(item, int) and item < 0:
            raise ValueError(f"{option}: argument positions count from 0, got {item}")
        out.add(item)
    return frozenset(out)


def check_named_arguments(args: Args, **named: frozenset[int | str]) -> None:
    """``mutates=`` / ``no_grad=`` must name arguments ``args`` has (a ValueError naming the others)."""
    keys = {k for k, _ in arg_items(args)}
    for option, names in named.items():
        unknown = sorted((m for m in names if m not in keys), key=str)
        if unknown:
            raise ValueError(
                f"{option} names arguments the inputs do not have: {unknown}; arguments: {sorted(map(str, keys))}"
            )


Builder = Callable[["Maker"], tuple | Args]
Inputs = Union[tuple, list, Args, Builder]  # noqa: UP007 (runtime alias on 3.10)


@functools.lru_cache(maxsize=4096, typed=True)  # a check derives dozens, the same in every check
def derive_seed(seed: int, *parts: object) -> int:
    """A 32-bit seed derived from ``seed`` and ``parts``; stable across processes."""
    text = ":".join([str(seed), *map(str, parts)]).encode()
    return zlib.crc32(text) & _MAX_SEED


def _normalize_shape(shape: Sequence[Any]) -> tuple[int, ...]:
    if (len(shape) == 1 and isinstance(shape[0], (tuple, list))) or (
        len(shape) == 1 and type(shape[0]).__name__ == "Size"
    ):
        shape = tuple(shape[0])
    out = []
    for size in shape:
        if isinstance(size, bool) or (not isinstance(size, int) and not hasattr(size, "__index__")):
            raise TypeError(
                f"make(*shape): sizes must be integers, got {size!r} in {tuple(shape)!r}"
            )
        size = int(size)
        if size < 0:
            raise ValueError(f"make(*shape): negative size {size} in {tuple(shape)!r}")
        out.append(size)
    return tuple(out)


class Maker:
    """``make(*shape, dtype=None, low=None, high=None)``: a seeded tensor factory.

    Floating tensors default to the bound dtype and to values in [-9, 9];
    integer tensors default to ``low=0`` (negative indices silently mean
    something else in indexing code) and ``high=10``. Every call draws from
    the next seed in a sequence that starts at ``seed``, so the same builder
    gives the same tensors in every run and on every device.

    ``scale`` multiplies floating tensors whose ``low`` and ``high`` were both
    left out: the correctness engine uses it for large- and small-magnitude
    trials. Tensors given an explicit domain keep it, except that a scale
    below 1 shrinks a declared interval that contains 0 toward 0
    (``[low * scale, high * scale]``): an op with a restricted domain meets
    small inputs inside it. An interval that excludes 0 keeps its bounds.
    ``offset`` is added to floating tensors whose ``low`` and ``high`` were
    both left out (the engine's offset trial: data far from zero).

    >>> import torch
    >>> from pytest_effective_torch import Maker
    >>> make = Maker("cpu", torch.float32, seed=0)
    >>> x = make(2, 3)
    >>> x.shape, x.dtype
    (torch.Size([2, 3]), torch.float32)
    >>> index = make(4, dtype=torch.int64, high=3)
    >>> bool(((index >= 0) & (index < 3)).all())
    True
    >>> torch.equal(Maker("cpu", torch.float32, seed=0)(2, 3), x)
    True
    """

    def __init__(
        self,
        device: torch.device | str = "cpu",
        dtype: torch.dtype | None = None,
        seed: int = 0,
        *,
        scale: float | None = None,
        offset: float | None = None,
    ) -> None:
        import torch

        self.device = torch.device(device)
        self.dtype = torch.float32 if dtype is None else dtype
        self.seed = int(seed)
        self.scale = scale
        self.offset = offset
        self.calls = 0
        #: (tensor, scaled) for every tensor made, in order.
        self.made: list[tuple[torch.Tensor, bool]] = []
        #: draws the default-range floating tensors (reseeded per call)
        self._gen = torch.Generator(device="cpu")

    def __call__(
        self,
        *shape: Any,
        dtype: torch.dtype | None = None,
        low: float | None = None,
        high: float | None = None,
        requires_grad: bool = False,
        exclude_zero: bool = False,
    ) -> torch.Tensor:
        import torch

        size = _normalize_shape(shape)
        dtype = self.dtype if dtype is None else dtype
        if not isinstance(dtype, torch.dtype):
            raise TypeError(f"make(dtype=...): expected a torch.dtype, got {dtype!r}")
        floating = dtype.is_floating_point or dtype.is_complex
        if dtype != torch.bool and not floating and low is None:
            low = 0
        default_range = floating and low is None and high is None
        scale = self.scale if floating else None
        if scale is not None and not default_range:
            # A declared domain is kept, but one that contains 0 shrinks
            # toward 0 in the small-magnitude trial (make_tensor's default
            # bounds are -9 and 9 when one of them is left out).
            lo, hi = (-9.0 if low is None else low), (9.0 if high is None else high)
            if not (scale < 1 and lo <= 0 <= hi):
                scale = None
        scaled = scale is not None or (default_range and self.offset is not None)
        call_seed = derive_seed(self.seed, "make", self.calls)
        self.calls += 1
        # (make_tensor draws the other floating dtypes, float8 among them, in float32 and casts)
        if default_range and dtype in (torch.float32, torch.float64, torch.float16, torch.bfloat16) and not exclude_zero:
            # make_tensor's draw for its default [-9, 9] range, from a private
            # generator: the same values, without saving and restoring the
            # global generator's state around each call.
            tensor = torch.empty(size, dtype=dtype).uniform_(-9.0, 9.0, generator=self._gen.manual_seed(call_seed))
        else:
            tensor = self._make_tensor(size, dtype, low, high, exclude_zero, call_seed)
        if scale is not None:
            tensor.mul_(scale)  # in place: a fresh large tensor costs page faults
        if default_range and self.offset is not None:
            tensor.add_(self.offset)
        tensor = _to_device(tensor, self.device)
        if requires_grad:
            tensor.requires_grad_(True)
        self.made.append((tensor, scaled))
        return tensor

    @staticmethod
    def _make_tensor(
        size: tuple[int, ...], dtype: torch.dtype, low: float | None, high: float | None, exclude_zero: bool, seed: int
    ) -> torch.Tensor:
        """torch.testing.make_tensor on the CPU, drawing from ``seed``."""
        import torch
        from torch.testing import make_tensor

        with torch.random.fork_rng(devices=[]):
            # Only the CPU generator draws here; torch.manual_seed would also
            # queue lazy CUDA/XPU seeding (a stack capture per call, and a
            # CUDA seed changed outside fork_rng).
            torch.random.default_generator.manual_seed(seed)
            return make_tensor(size, dtype=dtype, device="cpu", low=low, high=high, exclude_zero=exclude_zero)

    def __repr__(self) -> str:
        return (
            f"Maker(device={str(self.device)!r}, dtype={self.dtype}, seed={self.seed}"
            + (f", scale={self.scale:g}" if self.scale is not None else "")
            + (f", offset={self.offset:g}" if self.offset is not None else "")
            + ")"
        )


def _to_device(tensor: torch.Tensor, device: torch.device) -> torch.Tensor:
    """The CPU-drawn tensor on ``device``.

    To a GPU the copy goes from pinned memory without blocking: the DMA
    engine moves it while the CPU draws the next tensor (a pageable copy is
    staged and waited for: about 60 ms per 4096 x 4096 float32 tensor).
    Kernels that use the tensor are queued behind the copy on the same
    stream, and torch's pinned-memory allocator keeps the source alive until
    the copy is done.
    """
    if device.type == "cpu":
        return tensor
    if device.type == "cuda":
        return tensor.pin_memory().to(device, non_blocking=True)
    return tensor.to(device)


def is_builder(inputs: object) -> bool:
    """True when ``inputs`` is a builder (a callable) rather than fixed arguments."""
    return callable(inputs) and not isinstance(inputs, (tuple, list, Args))


def as_args(value: object, *, what: str = "inputs") -> Args:
    """Turn a tuple, list or :class:`Args` into :class:`Args`; reject the rest."""
    __tracebackhide__ = True
    if isinstance(value, Args):
        return value
    if isinstance(value, (tuple, list)):
        return Args(*value)
    raise TypeError(
        f"{what} must be a tuple of positional arguments or Args(*args, **kwargs), "
        f"got {type(value).__name__}; wrap a single tensor as (x,)"
    )


def build(inputs: Inputs, make: Maker, *, context: str | Callable[[], str]) -> Args:
    """Call a builder with ``make`` (or take fixed arguments) and return :class:`Args`.

    A crash inside the builder is re-raised with ``context`` (which trial,
    how to rerun; a callable is asked only then); a return value of the
    wrong type, or fixed arguments of the wrong type, is the caller's
    TypeError and gets none.
    """
    __tracebackhide__ = True
    if not is_builder(inputs):
        return as_args(inputs)
    try:
        value = inputs(make)  # type: ignore[operator]
    except Exception as exc:
        with_context(exc, context() if callable(context) else context)
    return as_args(value, what="the inputs builder's return value")
