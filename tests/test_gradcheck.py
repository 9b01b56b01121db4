"""gradcheck: float64 copies, the worst Jacobian entry on failure, double-backward hints."""

from __future__ import annotations

import re

import pytest
import torch
from _crash import crash
from torch.autograd.function import once_differentiable

from pytest_effective_torch import Args, CheckFailed, gradcheck


class _Square(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return x * x

    @staticmethod
    def backward(ctx, grad):
        (x,) = ctx.saved_tensors
        return 2 * x * grad


class _WrongSquare(_Square):
    @staticmethod
    def backward(ctx, grad):
        (x,) = ctx.saved_tensors
        out = 2 * x * grad
        out[..., 1] *= 3  # one column wrong
        return out


class _DetachedSquare(_Square):
    @staticmethod
    def backward(ctx, grad):
        (x,) = ctx.saved_tensors
        return 2 * x.detach() * grad  # right value, wrong second derivative


class _OnceSquare(_Square):
    @staticmethod
    @once_differentiable
    def backward(ctx, grad):
        (x,) = ctx.saved_tensors
        return 2 * x * grad


def small(make):
    return (make(2, 3),)


def test_a_correct_function_passes_and_the_report_says_float64():
    report = gradcheck(_Square.apply, small)
    assert report.dtype == "float64"
    assert report.gradgrad
    assert "first and second derivatives of 1 output(s) with respect to input 0" in str(report)


def test_float32_inputs_are_checked_on_float64_copies():
    x = torch.randn(3, 2, dtype=torch.float32)
    report = gradcheck(torch.sigmoid, (x,))
    assert "float64 copies" in str(report)
    assert x.dtype == torch.float32 and not x.requires_grad


def test_a_wrong_backward_names_the_input_the_output_and_the_worst_entry():
    with pytest.raises(CheckFailed) as info:
        gradcheck(_WrongSquare.apply, small)
    msg = str(info.value)
    assert msg.startswith("gradcheck failed: analytical gradient (backward) differs from finite differences")
    m = re.search(
        r"worst Jacobian entry d output\[(\d), 1\] / d input 0\[\1, 1\]: numerical (\S+), analytical (\S+)", msg
    )
    assert m, msg
    assert float(m.group(3)) == pytest.approx(3 * float(m.group(2)), rel=1e-4)
    assert "rerun: gradcheck(fn, inputs, device='cpu', seed=0)" in msg


def test_a_wrong_second_derivative_fails_gradgradcheck_with_its_worst_entry():
    with pytest.raises(CheckFailed) as info:
        gradcheck(_DetachedSquare.apply, small)
    msg = str(info.value)
    assert msg.startswith("gradgradcheck failed: second derivatives")
    assert "worst Jacobian entry d grad of input 0" in msg
    assert "check_gradgrad=False" in msg
    gradcheck(_DetachedSquare.apply, small, check_gradgrad=False)


def test_compiled_code_that_cannot_be_differentiated_twice_points_to_check_gradgrad_false():
    # Real torch.compile (the aot_eager backend: no C++ compiler needed), so
    # the message matched is torch's own, whatever its wording in this version.
    compiled = torch.compile(lambda x: x * x * x, backend="aot_eager")
    with pytest.raises(CheckFailed) as info:
        gradcheck(compiled, small)
    msg = str(info.value)
    assert msg.startswith("gradgradcheck: fn cannot be differentiated twice: ")
    assert "double backward" in msg.splitlines()[0]
    assert "pass check_gradgrad=False" in msg
    report = gradcheck(compiled, small, check_gradgrad=False)
    assert "first derivatives of 1 output(s)" in str(report)


def test_a_once_differentiable_backward_is_reported_as_missing_second_derivatives():
    with pytest.raises(CheckFailed) as info:
        gradcheck(_OnceSquare.apply, small)
    msg = str(info.value)
    assert "gradgradcheck failed" in msg
    assert re.search(r"worst Jacobian entry d grad of input 0\[.*\] / d .*: numerical \S+, analytical 0 ", msg)
    assert "check_gradgrad=False" in msg


def test_module_parameters_are_checked_too():
    torch.manual_seed(0)
    report = gradcheck(torch.nn.Linear(3, 2), lambda make: (make(4, 3),))
    assert report.inputs == ["input 0", "parameter weight", "parameter bias"]
    assert "parameters checked: weight, bias" in str(report)


def test_keyword_and_nested_inputs_are_differentiated_by_name():
    def fn(xs, *, scale):
        return xs[0] * xs[1] * scale

    report = gradcheck(fn, lambda make: Args([make(2), make(2)], scale=make(2)))
    assert report.inputs == ["input 0[0]", "input 0[1]", "input 'scale'"]


def test_a_crash_in_fn_keeps_its_type_and_gets_context():
    def fn(x):
        raise KeyError("boom")

    _, context = crash(KeyError, lambda: gradcheck(fn, small))
    assert "while running fn in gradcheck on float64 copies" in context


def batch_norm_eval(x, running_mean, running_var, weight, bias):
    return torch.nn.functional.batch_norm(x, running_mean, running_var, weight, bias, training=False)


def statistics_inputs(make):
    return make(2, 3, 4), make(3), make(3, low=0.5, high=2), make(3), make(3)


def test_an_input_torch_cannot_differentiate_gets_a_hint_to_no_grad():
    _, context = crash(RuntimeError, lambda: gradcheck(batch_norm_eval, statistics_inputs))
    assert "not differentiable with respect to argument 'running_mean'" in context
    assert "keep arguments out of them with no_grad=(position or keyword name, ...)" in context
    assert "check_grad=False" not in context  # not an option of gradcheck


def test_no_grad_keeps_arguments_out_of_the_jacobians():
    report = gradcheck(batch_norm_eval, statistics_inputs, no_grad=(1, 2))
    assert report.inputs == ["input 0", "input 3", "input 4"]


def test_no_grad_does_not_hide_a_wrong_gradient_of_the_other_inputs():
    class WrongBiasGradient(torch.autograd.Function):
        @staticmethod
        def forward(ctx, x, bias):
            return x + bias

        @staticmethod
        def backward(ctx, grad):
            return grad, 2 * grad

    with pytest.raises(CheckFailed, match=r"d output\[0\] / d input 2\[0\]: numerical 1, analytical 2"):
        gradcheck(lambda x, table, bias: WrongBiasGradient.apply(x * table, bias), lambda make: (make(3), make(3), make(3)), no_grad=1)


@pytest.mark.parametrize(
    ("kwargs", "error"),
    [
        ({"fn": 3}, TypeError),
        ({"inputs": torch.ones(2)}, TypeError),
        ({"eps": -1.0}, ValueError),
        ({"seed": -2}, ValueError),
        ({"check_gradgrad": "yes"}, TypeError),
        ({"no_grad": True}, TypeError),
        ({"no_grad": (4,)}, ValueError),
    ],
)
def test_bad_arguments_are_type_or_value_errors(kwargs, error):
    args = {"fn": torch.tanh, "inputs": small, **kwargs}
    with pytest.raises(error):
        gradcheck(args.pop("fn"), args.pop("inputs"), **args)


def test_no_floating_input_is_a_value_error():
    with pytest.raises(ValueError, match="at least one floating tensor"):
        gradcheck(lambda i: i * 2, (torch.arange(3),))
