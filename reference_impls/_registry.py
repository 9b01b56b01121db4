"""The registry's record types: a pair of implementations, a fit, a claim.

Topic modules describe their ops with these records; ``reference_impls``
collects them into ``PAIRS``, ``FITS`` and ``CLAIMS``. The suite in
``test_claims.py`` is generated from those three, so adding a pair or a claim
here adds its tests.

Records are frozen and compare by identity (``eq=False``): they hold
callables and dicts, and one registry entry is one thing.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    import torch

    from pytest_effective_torch import Maker

#: ``inputs(make) -> tuple | Args``, the plugin's builder form.
Builder = Callable[["Maker"], Any]

#: The dtypes every pair supports. Half precisions are added per pair.
BASE_DTYPES = ("float32", "float64")
ALL_DTYPES = ("float32", "float64", "float16", "bfloat16")

#: ``min_speedup`` of a claim: a number, a callable of a sweep's size
#: keywords returning a number or None (measured there), or None.
MinSpeedup = float | Callable[..., "float | None"] | None

ClaimKind = Literal["equal", "caught", "stabler", "faster", "less_memory", "fits"]
CLAIM_KINDS: tuple[str, ...] = ("equal", "caught", "stabler", "faster", "less_memory", "fits")


@dataclass(frozen=True, eq=False)
class Pair:
    """A slow, obviously-correct ``reference`` and a fast ``candidate``.

    ``reference`` and ``candidate`` are plain callables, or for module pairs
    the two ``nn.Module`` classes; :meth:`bind` always returns two things you
    can call, on the device and dtype you ask for.

    ``inputs`` builds moderate inputs for the equivalence check,
    ``small_inputs`` tiny ones for gradcheck (run in float64), and
    ``large_inputs`` the sizes where the speed claims are made. Builders take
    the plugin's ``make`` and return a tuple or ``Args``.

    Example, reusing a pair to check your own softmax::

        from reference_impls import PAIRS

        pair = PAIRS["softmax.stable"]

        def test_my_softmax(assert_same_as_reference, device, dtype):
            assert_same_as_reference(my_softmax, pair.candidate, pair.inputs,
                                     device=device, dtype=dtype)
    """

    name: str
    topic: str
    reference: Callable[..., Any]
    candidate: Callable[..., Any]
    inputs: Builder
    small_inputs: Builder | None = None
    large_inputs: Builder | None = None
    #: outputs depend differentiably on the floating inputs (gradcheck applies).
    differentiable: bool = True
    #: second derivatives exist and autograd can take them (gradgradcheck).
    twice_differentiable: bool = True
    #: inputs for the compile variant (``--effective-torch-variants=compile``):
    #: the candidate under torch.compile is checked and timed on these, kept
    #: small because compiling is slow on a CPU; None: the pair does not run
    #: compiled (TorchScript, Triton kernels, the trap), and says so.
    compile_inputs: Builder | None = None
    #: the candidate runs Triton kernels: compiled on CUDA, on CPU only through
    #: Triton's interpreter (``TRITON_INTERPRET=1``), never timed interpreted;
    #: the suite skips it elsewhere, saying why.
    triton: bool = False
    #: dtypes where comparing the two is meaningful.
    dtypes: tuple[str, ...] = BASE_DTYPES
    #: the two compute bitwise-identical outputs and gradients.
    exact: bool = False
    #: module pairs: candidate parameter name -> reference parameter name, or
    #: a callable taking the reference's gradients by name and returning the
    #: candidate's expected ones (the plugin's ``param_map=``).
    param_map: Mapping[str, str] | Callable[[Mapping[str, Any]], Mapping[str, Any]] | None = None
    #: ``factory(device, dtype) -> (candidate, reference)`` for module pairs,
    #: with weights that make them compute the same function.
    factory: Callable[[torch.device, torch.dtype], tuple[Any, Any]] | None = None
    #: a regular expression the plugin's failure message must match when
    #: the candidate is *meant* to be caught (the broadcasting trap).
    expected_failure: str | None = None
    #: keyword arguments for assert_same_as_reference (tolerances, trials).
    check_kwargs: Mapping[str, Any] = field(default_factory=dict)
    note: str = ""

    def bind(self, device: torch.device | str, dtype: torch.dtype) -> tuple[Any, Any]:
        """``(candidate, reference)`` ready to call on ``device`` and ``dtype``.

        Function pairs are returned as they are (they follow their inputs'
        device and dtype); module pairs are built by ``factory`` with
        equivalent weights.
        """
        if self.factory is not None:
            import torch

            return self.factory(torch.device(device), dtype)
        return self.candidate, self.reference

    def __str__(self) -> str:
        return self.name


@dataclass(frozen=True, eq=False)
class Fit:
    """A training run that should recover known coefficients.

    ``run(device, dtype, seed)`` trains from that seed and returns the fitted
    coefficients by name; ``targets`` maps each name to ``(value, atol)``.
    """

    name: str
    topic: str
    run: Callable[[torch.device, torch.dtype, int], Mapping[str, float]]
    targets: Mapping[str, tuple[float, float]]
    dtypes: tuple[str, ...] = BASE_DTYPES
    note: str = ""

    def misses(self, fitted: Mapping[str, float]) -> list[str]:
        """One line per coefficient outside its tolerance (empty when it fits)."""
        lines = []
        for key, (value, atol) in self.targets.items():
            got = fitted[key]
            if not abs(got - value) <= atol:
                lines.append(f"{key} = {got:.6g}, expected {value:g} +- {atol:g}")
        return lines

    def __str__(self) -> str:
        return self.name


@dataclass(frozen=True, eq=False)
class Claim:
    """Something the guide says about a pair or a fit, as checkable data.

    Kinds:

    - ``equal``: the candidate computes the same function as the reference
      (outputs and gradients); checked with ``assert_same_as_reference``
      (at every size of ``sizes``, when given).
    - ``caught``: the candidate is wrong and the plugin must say so with a
      message containing the pair's ``expected_failure``.
    - ``stabler``: on ``inputs`` (hostile values) the reference is
      non-finite while the candidate is finite and equals ``expected``
      (and the gradient of its summed output with respect to input
      ``grad_arg`` equals ``expected_grad``).
    - ``faster``: the candidate is at least ``min_speedup`` times faster on
      ``inputs`` (``per_device`` overrides it per device type, e.g. cuda);
      ``None`` (either way) measures and reports without a verdict. With
      ``sizes`` the claim is a size sweep: ``inputs`` takes the size
      keywords, ``min_speedup`` may be a callable of them, ``nbytes`` and
      ``flops`` give achieved rates, and ``modes`` picks the curves.
    - ``less_memory``: peak memory of the candidate is at most
      ``max_memory_ratio`` of the reference's.
    - ``fits``: the fit recovers its targets.
    """

    subject: str
    kind: ClaimKind
    #: what the guide says, in a few words (shown in the summary table).
    guide: str
    inputs: Builder | None = None
    min_speedup: MinSpeedup = None
    per_device: Mapping[str, MinSpeedup] = field(default_factory=dict)
    max_memory_ratio: float | None = None
    #: time (or measure memory of) forward plus backward.
    backward: bool = False
    expected: tuple[float, ...] | None = None
    expected_grad: tuple[float, ...] | None = None
    #: which positional input ``expected_grad`` is the gradient for.
    grad_arg: int = 0
    #: device types where the claim is checked; empty means every device.
    devices: tuple[str, ...] = ()
    #: dtype the claim is made in, where one is (speed and memory claims).
    dtype: str | None = None
    #: ``(device, dtype) -> (candidate, reference)`` when the claim compares
    #: something else than the pair itself (other module sizes, another
    #: candidate against the pair's).
    factory: Callable[[torch.device, torch.dtype], tuple[Any, Any]] | None = None
    #: a size sweep: size keyword -> sizes, passed as ``sizes=`` (``inputs`` takes them)
    sizes: Mapping[str, tuple[int, ...]] | None = None
    #: bytes moved and floating-point operations per call: numbers, or callables of the size keywords
    nbytes: float | Callable[..., float] | None = None
    flops: float | Callable[..., float] | None = None
    #: speed sweeps: the modes timed, one curve each (forward, backward, full)
    modes: tuple[str, ...] | None = None
    note: str = ""

    def bind(self, pair: Pair, device: torch.device | str, dtype: torch.dtype) -> tuple[Any, Any]:
        """``(candidate, reference)`` for this claim: ``pair.bind`` unless it has a factory."""
        if self.factory is not None:
            import torch

            return self.factory(torch.device(device), dtype)
        return pair.bind(device, dtype)

    @property
    def id(self) -> str:
        """``subject:kind``, plus ``:backward`` for forward+backward speed claims and
        ``:sweep`` for claims swept over sizes."""
        return f"{self.subject}:{self.kind}" + (":backward" if self.backward else "") + (":sweep" if self.sizes else "")

    def min_speedup_on(self, device_type: str) -> MinSpeedup:
        """The speedup this claim demands on a device type (None: report only; a callable: per size)."""
        return self.per_device.get(device_type, self.min_speedup)

    def __str__(self) -> str:
        return self.id
