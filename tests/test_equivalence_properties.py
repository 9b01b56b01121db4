"""Properties of the correctness engine over random nested inputs (hypothesis).

Over random structures (tuples, lists, dicts, namedtuples, dataclasses, nested
two deep), dtypes and shapes (0-dim, empty, non-contiguous):

* a candidate identical to the reference always passes;
* one element corrupted far beyond any tolerance, in an output value, in a
  gradient, or written into an input in place, always fails with
  CheckFailed, never with an internal exception.

Derandomized with a bounded number of examples, so the run is deterministic
and takes seconds.
"""

from __future__ import annotations

import collections
import dataclasses
from typing import Any

import pytest
import torch
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from pytest_effective_torch import CheckFailed, assert_same_as_reference, tree

Pair = collections.namedtuple("Pair", "first second")


@dataclasses.dataclass
class Box:
    value: Any
    label: str = "box"


SHAPES = [(), (0,), (1,), (5,), (3, 4), (2, 0, 3), (2, 3, 2)]
DTYPES = [torch.float32, torch.float64, torch.float16, torch.bfloat16]
SETTINGS = settings(
    max_examples=25,
    derandomize=True,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
    database=None,
)


@dataclasses.dataclass(frozen=True)
class Leaf:
    """A tensor to be: its shape, whether it is laid out non-contiguously, and its seed."""

    shape: tuple[int, ...]
    strided: bool
    seed: int


LEAVES = st.builds(Leaf, st.sampled_from(SHAPES), st.booleans(), st.integers(0, 2**16))


def containers(children: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return st.one_of(
        st.lists(children, min_size=1, max_size=3),
        st.lists(children, min_size=1, max_size=3).map(tuple),
        st.dictionaries(st.sampled_from(["a", "b", "logits"]), children, min_size=1, max_size=3),
        st.tuples(children, children).map(lambda t: Pair(*t)),
        children.map(Box),
    )


STRUCTURES = st.recursive(LEAVES, containers, max_leaves=4)


def _materialize(structure: Any, dtype: torch.dtype) -> Any:
    """Leaves described by hypothesis become tensors in [-1, 1]; containers stay as drawn."""
    if isinstance(structure, Leaf):
        shape, strided, seed = structure.shape, structure.strided, structure.seed
        values = 2 * torch.rand(shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64) - 1
        if not (strided and shape):
            return values.to(dtype)
        # every other element of a wider buffer, offset by one: same values, non-contiguous
        view = torch.zeros((*shape[:-1], 2 * shape[-1] + 1), dtype=dtype)[..., 1::2]
        view.copy_(values)
        return view
    if isinstance(structure, Box):
        return Box(_materialize(structure.value, dtype))
    if isinstance(structure, Pair):
        return Pair(_materialize(structure.first, dtype), _materialize(structure.second, dtype))
    if isinstance(structure, dict):
        return {k: _materialize(v, dtype) for k, v in structure.items()}
    if isinstance(structure, tuple):
        return tuple(_materialize(v, dtype) for v in structure)
    return [_materialize(v, dtype) for v in structure]


def _replace_at(value: Any, path: str, fn: Any, here: str = "") -> Any:
    """``value`` with ``fn`` applied to the leaf at ``path``."""
    node = tree.node(value)
    if node is None:
        return fn(value) if here == path else value
    return node.rebuild([_replace_at(c, path, fn, here + k) for k, c in zip(node.keys, node.children, strict=True)])


def _first_element(t: torch.Tensor) -> tuple[int, ...]:
    return (0,) * t.ndim


def reference(value: Any) -> Any:
    """A smooth op with a gradient that is never zero (2 + 3 x^2 / 8 >= 2), leaf by leaf."""
    return tree.map_tensors(value, lambda t: 2 * t + t * t * t / 8)


def _first_nonempty(value: Any) -> str | None:
    for path, t in tree.tensors(value):
        if t.numel():
            return path
    return None


def _corrupt_output(t: torch.Tensor) -> torch.Tensor:
    bump = torch.zeros_like(t)
    bump[_first_element(t)] = 10 * (1 + float(t.detach().abs().max()))  # ten times the tensor's largest value
    return t + bump


def _check(candidate: Any, inputs: Any, dtype: torch.dtype) -> None:
    assert_same_as_reference(candidate, reference, (inputs,), dtype=dtype, seed=0)


@SETTINGS
@given(structure=STRUCTURES, dtype=st.sampled_from(DTYPES))
def test_an_identical_candidate_always_passes(structure, dtype):
    inputs = _materialize(structure, dtype)
    _check(lambda value: tree.map_tensors(value, lambda t: 2 * t + t * t * t / 8), inputs, dtype)


@SETTINGS
@given(structure=STRUCTURES, dtype=st.sampled_from(DTYPES))
def test_one_output_element_far_off_always_fails(structure, dtype):
    inputs = _materialize(structure, dtype)
    target = _first_nonempty(inputs)
    assume(target is not None)  # something to corrupt: not only empty tensors
    with pytest.raises(CheckFailed, match=r"candidate differs from reference"):
        _check(lambda value: _replace_at(reference(value), target, _corrupt_output), inputs, dtype)


@SETTINGS
@given(structure=STRUCTURES, dtype=st.sampled_from(DTYPES))
def test_one_gradient_element_far_off_always_fails(structure, dtype):
    inputs = _materialize(structure, dtype)
    target = _first_nonempty(inputs)
    assume(target is not None)

    def candidate(value: Any) -> Any:
        x = dict(tree.tensors(value))[target]
        scale = torch.zeros_like(x)
        scale[_first_element(x)] = 1e3
        # the same values forward; one element's gradient is a thousand times too large
        return _replace_at(reference(value), target, lambda out: out + (x - x.detach()) * scale)

    with pytest.raises(CheckFailed, match="grad of input 0"):
        _check(candidate, inputs, dtype)


@SETTINGS
@given(structure=STRUCTURES, dtype=st.sampled_from(DTYPES))
def test_an_in_place_write_into_an_input_always_fails(structure, dtype):
    inputs = _materialize(structure, dtype)
    target = _first_nonempty(inputs)
    assume(target is not None)

    def candidate(value: Any) -> Any:
        x = dict(tree.tensors(value))[target]
        with torch.no_grad():
            x[_first_element(x)] += 1
        return reference(value)

    with pytest.raises(CheckFailed, match=r"candidate modified input 0\S* in place"):
        _check(candidate, inputs, dtype)
