"""Custom-op candidates are also checked with torch.library.opcheck; its failures are named by test."""

from __future__ import annotations

import pytest
import torch

from pytest_effective_torch import CheckFailed, assert_same_as_reference
from pytest_effective_torch.equivalence.opcheck import is_custom_op

ROWS = lambda make: (make(6, 5),)  # noqa: E731


# Registered once per process: torch.library names are global.
@torch.library.custom_op("pet_opcheck::sin_no_fake", mutates_args=())
def sin_no_fake(x: torch.Tensor) -> torch.Tensor:
    return torch.sin(x)


@torch.library.custom_op("pet_opcheck::sin_fake", mutates_args=())
def sin_fake(x: torch.Tensor) -> torch.Tensor:
    return torch.sin(x)


@sin_fake.register_fake
def _(x: torch.Tensor) -> torch.Tensor:
    return torch.empty_like(x)


@torch.library.custom_op("pet_opcheck::sin_grad", mutates_args=())
def sin_grad(x: torch.Tensor) -> torch.Tensor:
    return torch.sin(x)


@sin_grad.register_fake
def _(x: torch.Tensor) -> torch.Tensor:
    return torch.empty_like(x)


def _setup(ctx, inputs, output):  # type: ignore[no-untyped-def]
    (ctx.x,) = inputs


sin_grad.register_autograd(lambda ctx, g: g * torch.cos(ctx.x), setup_context=_setup)


@torch.library.custom_op("pet_opcheck::wrong_fake", mutates_args=())
def wrong_fake(x: torch.Tensor) -> torch.Tensor:
    return torch.sin(x)


@wrong_fake.register_fake
def _(x: torch.Tensor) -> torch.Tensor:
    return x.new_empty(x.shape[0])  # the real op keeps both dimensions


@torch.library.custom_op("pet_opcheck::secretly_mutates", mutates_args=())
def secretly_mutates(x: torch.Tensor) -> torch.Tensor:
    out = torch.sin(x)
    x.add_(1)  # declared as not mutating its input
    return out


@secretly_mutates.register_fake
def _(x: torch.Tensor) -> torch.Tensor:
    return torch.empty_like(x)


def test_the_three_kinds_of_custom_op_are_recognized_and_plain_functions_are_not():
    assert is_custom_op(sin_fake)
    assert is_custom_op(torch.ops.pet_opcheck.sin_fake)
    assert is_custom_op(torch.ops.pet_opcheck.sin_fake.default)
    assert not is_custom_op(torch.sin)
    assert not is_custom_op(lambda x: x)


def test_an_op_without_a_fake_implementation_fails_naming_the_opcheck_tests():
    with pytest.raises(CheckFailed) as info:
        assert_same_as_reference(sin_no_fake, torch.sin, ROWS, check_grad=False)
    message = str(info.value)
    assert "opcheck test_faketensor: There was no fake impl registered for" in message
    assert "opcheck test_aot_dispatch_dynamic:" in message
    assert "torch.library.opcheck(pet_opcheck::sin_no_fake) on this trial's inputs (not requiring grad)" in message
    assert "opcheck test_schema" not in message  # only the failed tests are listed


def test_the_same_op_with_register_fake_passes_also_as_op_overload_and_packet():
    for op in (sin_fake, torch.ops.pet_opcheck.sin_fake, torch.ops.pet_opcheck.sin_fake.default):
        assert_same_as_reference(op, torch.sin, ROWS, check_grad=False)


def test_without_an_autograd_formula_check_grad_fails_and_check_grad_false_passes():
    with pytest.raises(CheckFailed) as info:
        assert_same_as_reference(sin_fake, torch.sin, ROWS)
    message = str(info.value)
    assert "opcheck test_aot_dispatch_dynamic: Trying to backward through pet_opcheck.sin_fake.default" in message
    assert "no autograd formula" in message
    assert "requiring grad; no_grad= keeps arguments out, check_grad=False checks without" in message
    assert_same_as_reference(sin_fake, torch.sin, ROWS, check_grad=False)


def test_an_op_with_fake_and_autograd_registered_passes_with_gradients():
    report = assert_same_as_reference(sin_grad, torch.sin, ROWS)
    assert report.worst is not None


def test_a_fake_implementation_with_the_wrong_shape_is_caught():
    with pytest.raises(CheckFailed, match=r"opcheck test_faketensor: .*"):
        assert_same_as_reference(wrong_fake, torch.sin, ROWS, check_grad=False)


def test_an_op_that_mutates_an_input_its_schema_says_it_does_not_fails_test_schema():
    with pytest.raises(CheckFailed) as info:
        assert_same_as_reference(secretly_mutates, torch.sin, ROWS, check_grad=False)
    assert "opcheck test_schema:" in str(info.value)


def test_opcheck_false_turns_it_off():
    assert_same_as_reference(sin_no_fake, torch.sin, ROWS, check_grad=False, opcheck=False)


def test_bad_opcheck_values_are_clear_errors():
    with pytest.raises(TypeError, match=r"opcheck must be True, False or None \(automatic\), got 'yes'"):
        assert_same_as_reference(sin_fake, torch.sin, ROWS, opcheck="yes")
    with pytest.raises(ValueError, match=r"opcheck=True needs a torch\.library custom op as the candidate"):
        assert_same_as_reference(torch.sin, torch.sin, ROWS, opcheck=True)
