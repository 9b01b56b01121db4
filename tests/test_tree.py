"""One tree walker for every nested value: the containers torch knows, and dataclasses.

The same containers must work alike in inputs, outputs, copies, mutation
snapshots and gradients, in both engines and in gradcheck.
"""

from __future__ import annotations

import collections
import dataclasses

import pytest
import torch
import torch.utils._pytree as pytree

from pytest_effective_torch import (
    Args,
    CheckFailed,
    assert_faster_than_reference,
    assert_same_as_reference,
    gradcheck,
)
from pytest_effective_torch.tree import leaves, map_tensors, shape, shape_change

Pair = collections.namedtuple("Pair", "low high")


@dataclasses.dataclass
class Out:
    logits: torch.Tensor
    scale: torch.Tensor
    label: str = "out"


@dataclasses.dataclass(frozen=True)
class Params:
    weight: torch.Tensor
    bias: torch.Tensor


class Registered:
    """A user class registered as a pytree node (as libraries do for their outputs)."""

    def __init__(self, a: torch.Tensor, b: torch.Tensor) -> None:
        self.a, self.b = a, b


pytree.register_pytree_node(
    Registered,
    lambda r: ([r.a, r.b], None),
    lambda children, _: Registered(*children),
    flatten_with_keys_fn=lambda r: ([(pytree.GetAttrKey("a"), r.a), (pytree.GetAttrKey("b"), r.b)], None),
)


# ------------------------------------------------------------ the walker


def test_paths_read_like_the_python_that_reaches_the_value():
    x, y = torch.zeros(1), torch.ones(2)
    value = {"out": [Out(x, y)], "pair": Pair(x, 3), "reg": Registered(y, x), "max": torch.max(torch.ones(2, 2), 0)}
    paths = [p for p, _ in leaves(value)]
    assert paths == [
        "['out'][0].logits",
        "['out'][0].scale",
        "['out'][0].label",
        "['pair'].low",
        "['pair'].high",
        "['reg'].a",
        "['reg'].b",
        "['max'][0]",
        "['max'][1]",
    ]


def test_map_tensors_keeps_container_types_and_shared_tensors_shared():
    x = torch.ones(3)
    value = {"a": Pair(x, x), "b": [Out(x, x * 2)], "c": collections.OrderedDict(z=x)}
    copied = map_tensors(value, lambda t: t.clone())
    assert isinstance(copied["a"], Pair) and isinstance(copied["b"][0], Out)
    assert isinstance(copied["c"], collections.OrderedDict)
    assert copied["a"].low is copied["a"].high is copied["b"][0].logits is copied["c"]["z"]
    assert copied["a"].low is not x and torch.equal(copied["a"].low, x)
    assert copied["b"][0].label == "out" and value["b"][0].logits is x  # the original is untouched


def test_map_tensors_rebuilds_frozen_dataclasses():
    p = Params(torch.ones(2), torch.zeros(2))
    copied = map_tensors(p, lambda t: t + 1)
    assert isinstance(copied, Params) and torch.equal(copied.weight, torch.full((2,), 2.0))


def test_shape_change_names_what_changed_inside_a_container():
    x = torch.ones(1)
    value = {"items": [x], "cfg": Out(x, x)}
    before = shape(value)
    value["items"].append(x)
    assert shape_change(before, shape(value), "input 0") == "input 0['items']: list had 1 items, now 2"
    value["items"].pop()
    value["cfg"].label = "changed"
    assert shape_change(before, shape(value), "input 0") == "input 0['cfg'].label was 'out', now 'changed'"
    value["cfg"].label = "out"
    value["new"] = 1
    assert shape_change(before, shape(value), "input 0") == "dict gained keys ['new']"


# ------------------------------------------------------------ equivalence


def _out_reference(x, w):
    return Out(torch.softmax(x @ w, -1), (x * x).sum(-1))


def _out_candidate(x, w):
    logits = x @ w
    e = torch.exp(logits - logits.amax(-1, keepdim=True))
    return Out(e / e.sum(-1, keepdim=True), x.pow(2).sum(-1))


def test_a_correct_candidate_returning_a_dataclass_passes():
    report = assert_same_as_reference(_out_candidate, _out_reference, lambda make: (make(4, 5), make(5, 3)))
    assert "output.logits (trial 1)" in report.outputs and "output.scale (trial 1)" in report.outputs
    assert any(g.startswith("grad of input 1") for g in report.gradients)


def test_a_wrong_dataclass_field_fails_by_its_path():
    def candidate(x, w):
        out = _out_candidate(x, w)
        return Out(out.logits, out.scale * 1.01, out.label)

    with pytest.raises(CheckFailed, match=r"output\.scale: shape \(4,\), float32, cpu: \d+ of 4 elements differ"):
        assert_same_as_reference(candidate, _out_reference, lambda make: (make(4, 5), make(5, 3)))


def test_a_dataclass_of_another_type_is_a_structure_problem():
    @dataclasses.dataclass
    class Other:
        logits: torch.Tensor
        scale: torch.Tensor
        label: str = "out"

    def candidate(x, w):
        out = _out_candidate(x, w)
        return Other(out.logits, out.scale)

    with pytest.raises(CheckFailed, match="output: candidate returned Other, reference Out"):
        assert_same_as_reference(candidate, _out_reference, lambda make: (make(4, 5), make(5, 3)))


def test_structseqs_and_registered_nodes_pair_up():
    assert_same_as_reference(
        lambda x: Registered(*torch.max(x, 0)), lambda x: Registered(*x.max(0)), lambda make: (make(6, 4),)
    )
    with pytest.raises(CheckFailed, match=r"output\.a: .*elements differ"):
        assert_same_as_reference(
            lambda x: Registered(x.amax(0) + 1, x.argmax(0)), lambda x: Registered(*x.max(0)), lambda make: (make(6, 4),)
        )


def test_gradients_reach_tensors_inside_a_dataclass_input():
    def reference(x, p):
        return x @ p.weight + p.bias

    def wrong(x, p):
        return x @ p.weight + p.bias.detach()  # no gradient for the bias

    def inputs(make):
        return (make(4, 3), Params(make(3, 2), make(2)))

    assert_same_as_reference(lambda x, p: torch.addmm(p.bias, x, p.weight), reference, inputs)
    with pytest.raises(CheckFailed, match=r"grad of input 1\.bias: gradient is None for the candidate"):
        assert_same_as_reference(wrong, reference, inputs)


def test_an_in_place_change_inside_a_dataclass_input_is_caught():
    def candidate(x, out):
        out.label = "seen"
        return x * 2

    with pytest.raises(CheckFailed, match=r"candidate modified input 1 in place \(input 1\.label was 'out', now 'seen'\)"):
        assert_same_as_reference(candidate, lambda x, out: x * 2, lambda make: (make(3), Out(make(2), make(2))))


def test_gradcheck_walks_nested_inputs():
    report = gradcheck(lambda d: d["a"][0] * d["b"].low, lambda make: ({"a": [make(3)], "b": Pair(make(3), 1)},))
    assert report.inputs == ["input 0['a'][0]", "input 0['b'].low"]


# ------------------------------------------------------------ speed


def test_backward_timing_finds_tensors_in_nested_inputs():
    result = assert_faster_than_reference(
        lambda xs: (xs[0] * xs[1]).sum(),
        lambda xs: torch.stack([a * b for a, b in zip(xs[0], xs[1], strict=True)]).sum(),
        lambda make: ([make(8, 4), make(8, 4)],),
        min_speedup=None,
        backward=True,
        time_budget=0.05,
    )
    assert result.verdict == "measured" and result.measured == "forward+backward"


def test_backward_timing_finds_outputs_inside_a_dataclass():
    result = assert_faster_than_reference(
        _out_candidate, _out_reference, Args(torch.randn(4, 5), torch.randn(5, 3)),
        min_speedup=None, backward=True, time_budget=0.05,
    )  # fmt: skip
    assert result.verdict == "measured"
