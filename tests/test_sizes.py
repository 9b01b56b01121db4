"""sizes=: the grid, the points' names, edge_sizes, and the errors for builders that cannot be swept."""

from __future__ import annotations

import pytest
import torch

from pytest_effective_torch import (
    Args,
    assert_faster_than_reference,
    assert_same_as_reference,
    edge_sizes,
)
from pytest_effective_torch.sizes import Point, bind, check_sizes, point_seed


def rows(make, *, n):
    return (make(4, n),)


def grid_builder(make, *, m, n):
    return (make(m, n),)


def no_sizes(make):
    return (make(4, 8),)


def _frames(info: pytest.ExceptionInfo) -> list[str]:
    return [entry.frame.code.path.name for entry in info.traceback]


# --- the grid ------------------------------------------------------------------------


def test_values_are_sorted_and_deduplicated_so_curves_run_from_small_to_large():
    grid = check_sizes({"n": [64, 1, 16, 16]})
    assert grid.values == ((1, 16, 64),)
    assert [p.label for p in grid.points()] == ["n=1", "n=16", "n=64"]


def test_several_keys_give_their_product_named_in_the_order_given():
    grid = check_sizes({"m": [8, 4], "n": [16, 64]})
    assert [p.label for p in grid.points()] == ["m=4,n=16", "m=4,n=64", "m=8,n=16", "m=8,n=64"]
    assert len(grid) == 4
    assert grid.describe() == "m=[4, 8] x n=[16, 64]"


def test_a_point_replaces_one_key_and_holds_the_others():
    point = Point((("m", 8), ("n", 64)))
    assert point.replace("n", 65).label == "m=8,n=65"
    assert point["m"] == 8 and point.kwargs == {"m": 8, "n": 64}


def test_a_bound_builder_is_called_with_the_point_and_named_after_it():
    point = Point((("n", 5),))
    bound = bind(rows, point)
    from pytest_effective_torch import Maker

    (x,) = bound(Maker("cpu", torch.float32, 0))
    assert x.shape == (4, 5)
    assert bound.__name__ == "rows[n=5]"


def test_a_point_draws_the_same_inputs_in_any_sweep_and_other_points_draw_others():
    a, b = Point((("n", 5),)), Point((("n", 6),))
    assert point_seed(3, a) == point_seed(3, Point((("n", 5),)))
    assert point_seed(3, a) != point_seed(3, b)


@pytest.mark.parametrize(
    ("sizes", "error", "message"),
    [
        ([1, 2], TypeError, "sizes must be a dict of size keyword to a list of integers"),
        ({}, ValueError, "at least one size keyword"),
        ({"n": 64}, TypeError, r"sizes\['n'\] must be a list of integers, got int 64; write \[64\]"),
        ({"n": []}, ValueError, r"sizes\['n'\] is empty"),
        ({"n": [1, 2.5]}, TypeError, r"must hold integers, got 2.5"),
        ({"n": [True]}, TypeError, "must hold integers, got True"),
        ({"n": [4, -1]}, ValueError, r"integers >= 0, got -1"),
        ({"not a name": [1]}, TypeError, "keyword names"),
    ],
)
def test_bad_sizes_are_the_callers_error_naming_the_value(sizes, error, message):
    with pytest.raises(error, match=message):
        check_sizes(sizes)


# --- edge_sizes ----------------------------------------------------------------------


def test_edge_sizes_sit_around_every_multiple_of_the_block():
    assert edge_sizes(16, 64) == [1, 15, 16, 17, 31, 32, 33, 47, 48, 49, 63, 64]
    assert edge_sizes(16, 65) == [1, 15, 16, 17, 31, 32, 33, 47, 48, 49, 63, 64, 65]
    assert edge_sizes(4, 3) == [1, 3]
    assert edge_sizes(1, 3) == [1, 2, 3]


@pytest.mark.parametrize(("args", "error"), [((0, 8), ValueError), ((8, 0), ValueError), ((8.0, 16), TypeError)])
def test_edge_sizes_rejects_what_is_not_a_positive_integer(args, error):
    with pytest.raises(error, match="edge_sizes"):
        edge_sizes(*args)


# --- builders that cannot be swept, through both engines ------------------------------

ENGINES = [
    pytest.param(lambda inputs, **kw: assert_same_as_reference(torch.neg, torch.neg, inputs, **kw), id="same"),
    pytest.param(
        lambda inputs, **kw: assert_faster_than_reference(
            torch.neg, torch.neg, inputs, min_speedup=None, time_budget=0.01, **kw
        ),
        id="faster",
    ),
]


@pytest.mark.parametrize("engine", ENGINES)
def test_a_builder_without_size_keywords_is_a_type_error_naming_its_parameters(engine):
    with pytest.raises(TypeError) as info:
        engine(no_sizes, sizes={"n": [1, 2]})
    assert str(info.value) == (
        "sizes= gives n, but the inputs builder no_sizes(make) takes no size keywords; "
        "write it as no_sizes(make, *, n)"
    )
    assert not {"sizes.py", "sweep.py", "options.py"} & set(_frames(info))


@pytest.mark.parametrize("engine", ENGINES)
def test_a_key_the_builder_does_not_take_is_a_type_error_naming_what_it_takes(engine):
    with pytest.raises(TypeError, match=r"sizes= names k, which the inputs builder rows\(make, \*, n\) does not take; its size keywords: n"):
        engine(rows, sizes={"n": [1], "k": [2]})


@pytest.mark.parametrize("engine", ENGINES)
def test_a_size_keyword_the_sweep_does_not_give_is_a_type_error(engine):
    with pytest.raises(TypeError, match=r"grid_builder\(make, \*, m, n\) needs the size keyword\(s\) m, which sizes= does not give"):
        engine(grid_builder, sizes={"n": [1]})


@pytest.mark.parametrize("engine", ENGINES)
def test_fixed_inputs_cannot_be_swept(engine):
    with pytest.raises(TypeError, match=r"sizes= needs a builder .* got fixed inputs \(tuple\), which cannot change size"):
        engine((torch.ones(3),), sizes={"n": [1, 2]})
    with pytest.raises(TypeError, match="fixed inputs"):
        engine(Args(torch.ones(3)), sizes={"n": [1, 2]})


@pytest.mark.parametrize("engine", ENGINES)
def test_a_builder_that_needs_sizes_called_without_them_says_to_pass_sizes(engine):
    with pytest.raises(TypeError, match=r"takes the size keyword\(s\) n: pass sizes=\{'n': \[...\]\}"):
        engine(rows)


@pytest.mark.parametrize("engine", ENGINES)
def test_a_builder_with_defaults_or_kwargs_can_be_swept_and_called_plainly(engine):
    def flexible(make, n=3, **rest):
        return (make(2, n),)

    engine(flexible)
    engine(flexible, sizes={"n": [1, 2], "unused": [0]})
