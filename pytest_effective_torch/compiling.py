"""torch.compile as a test variant: wrap the candidate, say when it cannot apply, time compiling apart.

Both engines take ``variant="eager"`` (the candidate as given) or
``variant="compile"`` (the candidate wrapped by :func:`compile_candidate`).
Only the candidate is compiled: the reference and the float64 truth stay
eager, and gradcheck always runs eagerly (compiled code has no double
backward).

Compiling is slow (seconds per graph on a CPU) and happens on the first
call per input signature (shapes, strides, dtypes, grad mode). The wrapper
times those first calls, so a report can give compile time on its own line
and a speed verdict never counts it.
"""

from __future__ import annotations

import contextlib
import functools
import time
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from .formatting import callable_name

#: The variants a test can run in; ``eager`` is the default and keeps test ids unchanged.
VARIANTS = ("eager", "compile")
DEFAULT_VARIANT = "eager"

#: Keyword arguments of ``torch.compile`` that ``compile_options=`` may set.
COMPILE_KEYS = ("mode", "dynamic", "fullgraph", "backend", "options")


def check_variant(variant: Any) -> str:
    """The variant's canonical name; ValueError naming the accepted ones otherwise."""
    if not isinstance(variant, str) or variant.strip().lower() not in VARIANTS:
        raise ValueError(f"variant must be one of {', '.join(VARIANTS)}; got {variant!r}")
    return variant.strip().lower()


@dataclass(frozen=True)
class CompileSettings:
    """How the candidate is compiled: ``torch.compile``'s own arguments.

    Dynamic shapes are off unless asked for (``dynamic=True``): the checks
    draw inputs of a few fixed shapes, and one graph per shape is what a
    kernel author ships and times.
    """

    mode: str | None = None
    dynamic: bool | None = False
    fullgraph: bool = False
    backend: str = "inductor"
    options: Mapping[str, Any] | None = field(default=None, hash=False)

    def describe(self) -> str:
        """``torch.compile(mode='default', dynamic=False)``, plus any other argument given."""
        parts = [f"mode={self.mode or 'default'!r}", f"dynamic={self.dynamic}"]
        if self.fullgraph:
            parts.append("fullgraph=True")
        if self.backend != "inductor":
            parts.append(f"backend={self.backend!r}")
        if self.options:
            parts.append(f"options={dict(self.options)!r}")
        return f"torch.compile({', '.join(parts)})"

    def kwargs(self) -> dict[str, Any]:
        out: dict[str, Any] = {"dynamic": self.dynamic, "fullgraph": self.fullgraph, "backend": self.backend}
        if self.mode is not None:
            out["mode"] = self.mode
        if self.options:
            out["options"] = dict(self.options)
        return out


def check_compile_options(compile_options: Any) -> CompileSettings:
    """``compile_options=`` as :class:`CompileSettings`; TypeError/ValueError on a bad one."""
    if compile_options is None:
        return CompileSettings()
    if not isinstance(compile_options, Mapping):
        raise TypeError(
            f"compile_options must be a dict of torch.compile arguments ({', '.join(COMPILE_KEYS)}); "
            f"got {type(compile_options).__name__}"
        )
    unknown = sorted(set(compile_options) - set(COMPILE_KEYS))
    if unknown:
        raise ValueError(f"compile_options: unknown key(s) {unknown}; accepted: {', '.join(COMPILE_KEYS)}")
    mode = compile_options.get("mode")
    if mode is not None and not isinstance(mode, str):
        raise TypeError(f"compile_options['mode'] must be a string such as 'max-autotune', got {mode!r}")
    dynamic = compile_options.get("dynamic", False)
    if dynamic is not None and not isinstance(dynamic, bool):
        raise TypeError(f"compile_options['dynamic'] must be True, False or None, got {dynamic!r}")
    fullgraph = compile_options.get("fullgraph", False)
    if not isinstance(fullgraph, bool):
        raise TypeError(f"compile_options['fullgraph'] must be True or False, got {fullgraph!r}")
    backend = compile_options.get("backend", "inductor")
    if not isinstance(backend, str):
        raise TypeError(f"compile_options['backend'] must be a backend name such as 'inductor', got {backend!r}")
    options = compile_options.get("options")
    if options is not None and not isinstance(options, Mapping):
        raise TypeError(f"compile_options['options'] must be a dict of inductor options, got {options!r}")
    if mode is not None and options:
        # torch.compile itself refuses both; say so before anything runs.
        raise ValueError("compile_options: give 'mode' or 'options', not both (torch.compile accepts one)")
    return CompileSettings(mode, dynamic, fullgraph, backend, options)


@contextlib.contextmanager
def _quiet() -> Any:
    """torch.compile's own imports warn that TorchScript is deprecated: torch talking to itself."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", r"`torch\.jit\.\w+` is deprecated", DeprecationWarning)
        yield


@functools.cache
def _unavailable(device_type: str, backend: str) -> str | None:
    with _quiet():
        return _probe(device_type, backend)


def _probe(device_type: str, backend: str) -> str | None:
    import torch

    if not hasattr(torch, "compile"):
        return "this torch has no torch.compile"
    import torch._dynamo

    if not torch._dynamo.is_dynamo_supported():
        return "torch.compile is not supported on this Python or platform"
    if backend != "inductor":
        return None  # other backends bring their own requirements
    if device_type == "cpu":
        from torch._inductor import cpp_builder

        try:
            cpp_builder.get_cpp_compiler()
        except Exception as exc:  # InvalidCxxCompiler, or a compiler that fails its probe
            first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            return f"torch.compile on the CPU needs a working C++ compiler (install g++ or set CXX): {first}"
    if device_type == "cuda":
        from torch.utils._triton import has_triton

        if not has_triton():
            return "torch.compile on CUDA needs Triton (pip install triton)"
    return None


def unavailable_reason(device: Any, settings: CompileSettings | None = None) -> str | None:
    """Why ``torch.compile`` cannot run on ``device`` here, or None when it can (cached)."""
    device_type = str(device).split(":")[0]
    return _unavailable(device_type, (settings or CompileSettings()).backend)


def skip_unless_available(device: Any, settings: CompileSettings | None = None) -> None:
    """``pytest.skip`` with the reason when the compile variant cannot apply on ``device``."""
    reason = unavailable_reason(device, settings)
    if reason is not None:
        from .errors import skip_test

        skip_test(f"variant compile skipped: {reason}")


def _signature(args: tuple[Any, ...], kwargs: dict[str, Any]) -> tuple[Any, ...]:
    """What makes torch.compile (with dynamic=False) build another graph: tensor metadata, grad mode."""
    import torch

    return (_signature_of(args), _signature_of(kwargs), torch.is_grad_enabled())


def _signature_of(value: Any) -> Any:
    """One value's part of :func:`_signature` (a module function: a nested one calling itself is a cycle)."""
    import torch

    if isinstance(value, torch.Tensor):
        return (tuple(value.shape), value.stride(), value.dtype, str(value.device), value.requires_grad)
    if isinstance(value, (list, tuple)):
        return tuple(_signature_of(v) for v in value)
    if isinstance(value, dict):
        return tuple((k, _signature_of(v)) for k, v in sorted(value.items(), key=lambda kv: str(kv[0])))
    return type(value).__name__


class Compiled:
    """The candidate under ``torch.compile``; its first call per input signature is timed.

    ``seconds`` is the time spent in those first calls (compiling plus one
    run each), ``graphs`` how many there were. Modules are compiled as
    modules (parameters and buffers stay the module's own).

    >>> fast = Compiled(lambda x: x.sin() + 1, CompileSettings())  # doctest: +SKIP
    >>> fast(torch.ones(3)); fast.graphs, round(fast.seconds)  # doctest: +SKIP
    (1, 4)
    """

    def __init__(self, fn: Callable[..., Any], settings: CompileSettings) -> None:
        import torch

        self.original = fn
        self.settings = settings
        target: Any = fn
        if not isinstance(fn, (torch.nn.Module, type(lambda: None))):
            # Custom ops and other callable objects: dynamo traces a function that calls them.
            def call(*args: Any, **kwargs: Any) -> Any:
                return fn(*args, **kwargs)

            target = call
        with _quiet():
            self.fn = torch.compile(target, **settings.kwargs())
        self.__name__ = self.__qualname__ = f"torch.compile({callable_name(fn)})"
        self.seconds = 0.0
        self.graphs = 0
        self._seen: set[Any] = set()

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        signature = _signature(args, kwargs)
        if signature in self._seen:
            return self.fn(*args, **kwargs)
        start = time.perf_counter()
        with _quiet():
            out = self.fn(*args, **kwargs)
        self.seconds += time.perf_counter() - start
        self.graphs += 1
        self._seen.add(signature)
        return out

    def __repr__(self) -> str:
        return f"<{self.settings.describe()} of {callable_name(self.original)}>"

    def note(self) -> str:
        """One line for a report: how it was compiled and what compiling cost."""
        return (
            f"compile: {self.seconds:.1f} s in the first calls of {self.graphs} input signature(s) "
            f"({self.settings.describe()}; reference and truth eager)"
        )


def compile_candidate(candidate: Callable[..., Any], settings: CompileSettings, device: Any) -> Compiled:
    """``candidate`` under torch.compile, or ``pytest.skip`` with the reason it cannot be."""
    skip_unless_available(device, settings)
    return Compiled(candidate, settings)
