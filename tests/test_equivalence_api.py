"""assert_same_as_reference as a function: correct rewrites pass, reports, modules, errors."""

from __future__ import annotations

import copy

import pytest
import torch
from _crash import crash

from pytest_effective_torch import (
    Args,
    CheckFailed,
    ReferenceNotDtypeGeneric,
    assert_same_as_reference,
)

# --- correct rewrites with different rounding pass -----------------------------------


def loop_sum(x):
    z = torch.zeros(x.shape[1], dtype=x.dtype, device=x.device)
    for row in x.unbind():
        z = z + row
    return z


def test_a_loop_sum_over_5000_rows_passes_where_assert_close_defaults_fail():
    x = torch.rand(5000, 64, generator=torch.Generator().manual_seed(0))
    with pytest.raises(AssertionError):
        torch.testing.assert_close(loop_sum(x), x.sum(0))
    report = assert_same_as_reference(
        loop_sum, lambda x: x.sum(0), lambda make: (make(5000, 64, low=0, high=1),), check_grad=False
    )
    assert report.worst is not None and report.worst.ratio < 0.5


def test_a_matmul_written_as_broadcast_multiply_sum_passes_with_k_1024():
    def candidate(a, b):
        return (a[:, :, None] * b[None, :, :]).sum(1)

    report = assert_same_as_reference(candidate, torch.matmul, lambda make: (make(8, 1024), make(1024, 8)))
    assert len(report.gradients) == 14
    assert report.worst.ratio < 0.5


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float32, torch.float64])
def test_a_stable_softmax_rewrite_passes_in_every_float_dtype(dtype):
    def candidate(x):
        e = torch.exp(x - x.amax(-1, keepdim=True))
        return e / e.sum(-1, keepdim=True)

    report = assert_same_as_reference(candidate, lambda x: torch.softmax(x, -1), lambda make: (make(5, 12),), dtype=dtype)
    assert report.kinds == ["random", "random", "random", "layout", "large", "small", "offset"]


# --- the report ----------------------------------------------------------------------


def test_the_report_says_what_was_checked_and_how_close_it_came():
    report = assert_same_as_reference(lambda x: x * 2, lambda x: x + x, lambda make: (make(3, 4),))
    text = str(report)
    assert text.startswith(
        "7 trials (random x3, layout, large, small, offset); 8 output and 7 gradient comparisons against the float64 truth"
    )
    assert "worst: " in text and "% of its allowance" in text
    assert report.outputs[0] == "output (trial 1)"
    assert report.outputs[1] == "output (candidate under torch.no_grad) (trial 1)"
    assert report.gradients[0] == "grad of input 0 (trial 1)"


def test_tuple_inputs_are_checked_as_given_and_re_laid_out_without_being_touched():
    x = torch.randn(4, 5, dtype=torch.float64)
    before = x.clone()
    report = assert_same_as_reference(torch.sin, lambda t: torch.sin(t), (x,))
    assert report.kinds == ["given", "layout"]
    assert report.truth.startswith("float64")
    assert torch.equal(x, before) and not x.requires_grad


def test_big_inputs_run_one_random_trial_and_say_so():
    report = assert_same_as_reference(lambda x: x * 2, lambda x: x + x, lambda make: (make(1100, 1000),), check_grad=False)
    assert report.kinds == ["random", "layout", "large", "small", "offset"]
    assert any("1 random trial instead of 3" in note for note in report.notes)


def test_user_tolerances_mean_what_they_mean_in_assert_close_against_the_truth():
    def off(x):
        return x + 1e-4

    inputs = lambda make: (make(10),)  # noqa: E731
    assert_same_as_reference(off, lambda x: x * 1.0, inputs, atol=1e-3)
    with pytest.raises(CheckFailed, match=r"\|candidate - truth\| <= atol \+ rtol \* \|truth\| with atol=1e-05, rtol=0"):
        assert_same_as_reference(off, lambda x: x * 1.0, inputs, atol=1e-5, rtol=0)


# --- structure ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("candidate", "reference", "text"),
    [
        (lambda x: [x, x], lambda x: (x, x), "output: candidate returned list, reference tuple"),
        (lambda x: (x,), lambda x: (x, x), "output: candidate returned 1 items, reference 2"),
        (lambda x: {"a": x}, lambda x: {"a": x, "b": x}, "output: candidate dict has missing keys ['b']"),
        (lambda x: (x, None), lambda x: (x, x), "output[1]: candidate returned None, reference a tensor"),
        (lambda x: (x, 3), lambda x: (x, 4), "output[1]: candidate returned 3, reference 4"),
        (lambda x: x.argmax(-1) * 0, lambda x: x.argmax(-1), "exact comparison for torch.int64"),
    ],
)
def test_outputs_of_another_structure_are_named_by_path(candidate, reference, text):
    with pytest.raises(CheckFailed) as info:
        assert_same_as_reference(candidate, reference, lambda make: (make(3, 4),))
    assert text in str(info.value)


def test_python_numbers_in_outputs_are_judged_like_tensors():
    assert_same_as_reference(
        lambda x: (x.sum().item(), "tag"),
        lambda x: (float(sum(x.reshape(-1).tolist())), "tag"),
        lambda make: (make(5),),
        check_grad=False,
    )


# --- modules ------------------------------------------------------------------------


class Concat(torch.nn.Module):
    """The guide's first version: tile b, concatenate, one Linear."""

    def __init__(self):
        super().__init__()
        self.linear = torch.nn.Linear(11, 10)

    def forward(self, a, b):
        return torch.relu(self.linear(torch.cat([a, b.expand(-1, a.shape[1], -1)], 2)))


class Merge(torch.nn.Module):
    """The guide's broadcasting version: two Linears, added with broadcasting."""

    def __init__(self, reference: Concat):
        super().__init__()
        self.linear1 = torch.nn.Linear(5, 10)
        self.linear2 = torch.nn.Linear(6, 10)
        with torch.no_grad():
            self.linear1.weight.copy_(reference.linear.weight[:, :5])
            self.linear2.weight.copy_(reference.linear.weight[:, 5:])
            self.linear1.bias.copy_(reference.linear.bias)
            self.linear2.bias.zero_()

    def forward(self, a, b):
        return torch.relu(self.linear1(a) + self.linear2(b))


def merge_inputs(make):
    return (make(5, 3, 5), make(5, 1, 6))


def merge_param_map(grads):
    weight, bias = grads["linear.weight"], grads["linear.bias"]
    return {
        "linear1.weight": weight[:, :5],
        "linear2.weight": weight[:, 5:],
        "linear1.bias": bias,
        "linear2.bias": bias,
    }


def test_differently_named_parameters_are_not_compared_without_a_map_and_the_report_says_so():
    torch.manual_seed(0)
    reference = Concat()
    report = assert_same_as_reference(Merge(reference), reference, merge_inputs)
    assert not report.parameter_gradients_compared
    assert any("parameter gradients not compared" in note for note in report.notes)


def test_a_param_map_callable_compares_repacked_parameter_gradients():
    torch.manual_seed(0)
    reference = Concat()
    candidate = Merge(reference)
    original = copy.deepcopy(candidate.state_dict())
    report = assert_same_as_reference(candidate, reference, merge_inputs, param_map=merge_param_map, dtype=torch.float64)
    assert report.parameter_gradients_compared
    assert any("grad of parameter linear2.weight" in g for g in report.gradients)
    # the engine worked on copies: dtype, values and .grad of the originals are untouched
    assert candidate.linear1.weight.dtype == torch.float32 and candidate.linear1.weight.grad is None
    assert all(torch.equal(v, candidate.state_dict()[k]) for k, v in original.items())


def test_a_wrong_parameter_gradient_is_named_by_parameter():
    class Scale(torch.autograd.Function):
        @staticmethod
        def forward(ctx, x, w):
            ctx.save_for_backward(x, w)
            return x * w

        @staticmethod
        def backward(ctx, grad):
            _, w = ctx.saved_tensors
            return grad * w, grad  # grad of w should be grad * x

    class Candidate(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.weight = torch.nn.Parameter(torch.linspace(-1, 1, 4))

        def forward(self, x):
            return Scale.apply(x, self.weight)

    class Reference(Candidate):
        def forward(self, x):
            return x * self.weight

    with pytest.raises(CheckFailed) as info:
        assert_same_as_reference(Candidate(), Reference(), lambda make: (make(3, 4),))
    msg = str(info.value)
    assert "grad of parameter weight: shape (4,), float32, cpu:" in msg
    assert "grad of input 0" not in msg


def test_a_param_map_dict_with_unknown_names_is_a_value_error():
    torch.manual_seed(0)
    reference = Concat()
    with pytest.raises(ValueError, match="param_map names unknown parameters"):
        assert_same_as_reference(Merge(reference), reference, merge_inputs, param_map={"nope": "linear.weight"})


# --- references that are not dtype-generic ------------------------------------------


def test_a_reference_that_builds_float32_buffers_is_said_to_be_not_dtype_generic():
    def reference(x):
        out = torch.zeros(x.shape[-1])  # float32 whatever x is
        out += x.sum(0)
        return out

    with pytest.warns(ReferenceNotDtypeGeneric, match="given float64 inputs, it returned float32 at output"):
        report = assert_same_as_reference(lambda x: x.sum(0), reference, lambda make: (make(6, 3),))
    assert any("judged against the reference in float32" in note for note in report.notes)


def test_the_not_dtype_generic_warning_points_at_the_callers_line():
    def reference(x):
        out = torch.zeros(x.shape[-1])  # float32 whatever x is
        out += x.sum(0)
        return out

    with pytest.warns(ReferenceNotDtypeGeneric) as record:
        assert_same_as_reference(lambda x: x.sum(0), reference, lambda make: (make(6, 3),))
    assert record[0].filename == __file__


def test_a_reference_that_fails_on_float64_is_said_so_too():
    def reference(x):
        assert x.dtype == torch.float32, "float32 only"
        return x * 2

    with pytest.warns(ReferenceNotDtypeGeneric, match="it raised AssertionError: float32 only"):
        assert_same_as_reference(lambda x: x + x, reference, lambda make: (make(3),))


# --- crashes in user code ----------------------------------------------------------------


def test_a_builder_that_raises_keeps_its_exception_with_the_trial_attached():
    def inputs(make):
        raise ValueError("no data")

    error, context = crash(ValueError, lambda: assert_same_as_reference(torch.sin, torch.sin, inputs))
    assert str(error) == "no data"
    assert "while building the inputs in trial 1 of 7 (random values)" in context


def test_a_candidate_that_raises_gets_the_trial_shapes_and_rerun_line():
    def candidate(x):
        raise ZeroDivisionError("oops")

    _, notes = crash(
        ZeroDivisionError, lambda: assert_same_as_reference(candidate, torch.sin, lambda make: (make(6, 10),), seed=5)
    )
    assert "while running the candidate in trial 1 of 7 (random values)" in notes
    assert "inputs: input 0: shape (6, 10), float32, cpu" in notes
    assert "rerun: assert_same_as_reference(candidate, reference, inputs, device='cpu', dtype=torch.float32, seed=5)" in notes


def test_a_builder_returning_a_bare_tensor_is_a_type_error():
    with pytest.raises(TypeError, match="inputs builder's return value"):
        assert_same_as_reference(torch.sin, torch.sin, lambda make: make(3))


# --- bad arguments ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"candidate": 3}, TypeError, "candidate must be callable"),
        ({"inputs": torch.ones(2)}, TypeError, "wrap a single tensor"),
        ({"atol": -1.0}, ValueError, "atol must be a finite number >= 0"),
        ({"rtol": "tight"}, TypeError, "rtol must be a number"),
        ({"trials": 0}, ValueError, "trials must be a positive integer"),
        ({"seed": -1}, ValueError, "seed must be an integer"),
        ({"mutates": [1.5]}, TypeError, "mutates must hold argument positions"),
        ({"mutates": ("out",)}, ValueError, "mutates names arguments the inputs do not have"),
        ({"no_grad": True}, TypeError, r"no_grad names arguments \(positions and/or keyword names\), got True"),
        ({"no_grad": [None]}, TypeError, "no_grad must hold argument positions"),
        ({"no_grad": (3, "mask")}, ValueError, r"no_grad names arguments the inputs do not have: \[3, 'mask'\]"),
        ({"dtype": torch.int64}, ValueError, "dtype must be a floating dtype"),
        ({"device": "nonsense"}, ValueError, "invalid device 'nonsense'"),
        ({"param_map": 3}, TypeError, "param_map must be a dict"),
        ({"check_grad": "yes"}, TypeError, "check_grad must be True or False"),
    ],
)
def test_bad_arguments_are_type_or_value_errors(kwargs, error, match):
    args = {"candidate": torch.sin, "reference": torch.sin, "inputs": lambda make: (make(3),), **kwargs}
    with pytest.raises(error, match=match):
        assert_same_as_reference(args.pop("candidate"), args.pop("reference"), args.pop("inputs"), **args)


# --- inputs kept out of the gradients (no_grad=) ----------------------------------------


def batch_norm_by_hand(x, running_mean, running_var, weight, bias):
    scale = weight / torch.sqrt(running_var + 1e-5)
    return (x - running_mean[:, None]) * scale[:, None] + bias[:, None]


def batch_norm_eval(x, running_mean, running_var, weight, bias):
    return torch.nn.functional.batch_norm(x, running_mean, running_var, weight, bias, training=False, eps=1e-5)


def statistics_inputs(make):
    return make(8, 6, 10), make(6), make(6, low=0.5, high=2), make(6), make(6)


def test_an_input_torch_cannot_differentiate_crashes_with_a_hint_to_no_grad():
    _, notes = crash(RuntimeError, lambda: assert_same_as_reference(batch_norm_eval, batch_norm_by_hand, statistics_inputs))
    assert "while running the candidate in trial 1 of 7" in notes
    assert "keep arguments out of them with no_grad=(position or keyword name, ...)" in notes
    assert "check_grad=False" in notes


def test_no_grad_keeps_running_statistics_out_and_judges_the_other_gradients():
    report = assert_same_as_reference(batch_norm_eval, batch_norm_by_hand, statistics_inputs, no_grad=(1, 2))
    paths = {g.split(" (trial")[0] for g in report.gradients}
    assert paths == {"grad of input 0", "grad of input 3", "grad of input 4"}


def test_no_grad_does_not_excuse_a_wrong_gradient_of_the_other_inputs():
    def bias_gradient_lost(x, running_mean, running_var, weight, bias):
        return batch_norm_eval(x, running_mean, running_var, weight, bias.detach())

    with pytest.raises(CheckFailed, match=r"grad of input 4: gradient is None for the candidate but not for the reference"):
        assert_same_as_reference(bias_gradient_lost, batch_norm_by_hand, statistics_inputs, no_grad=(1, 2))


def test_no_grad_takes_keyword_names():
    def candidate(x, *, table):
        return x * table

    def reference(x, *, table):
        return table * x

    report = assert_same_as_reference(candidate, reference, lambda make: Args(make(4, 6), table=make(6)), no_grad="table")
    assert {g.split(" (trial")[0] for g in report.gradients} == {"grad of input 0"}


def test_fixed_inputs_check_the_names_too():
    given = statistics_inputs(lambda *shape, **kw: torch.rand(*shape) + 0.5)
    with pytest.raises(ValueError, match=r"no_grad names arguments the inputs do not have: \['running_mean'\]"):
        assert_same_as_reference(batch_norm_eval, batch_norm_by_hand, given, no_grad=("running_mean",))
    with pytest.raises(ValueError, match=r"mutates names arguments the inputs do not have: \[9\]"):
        assert_same_as_reference(batch_norm_eval, batch_norm_by_hand, given, mutates=9)
    report = assert_same_as_reference(batch_norm_eval, batch_norm_by_hand, given, no_grad=(1, 2))
    assert len(report.trials) == 2


def test_the_rerun_line_repeats_the_options_that_change_what_runs():
    def bias_gradient_lost(x, running_mean, running_var, weight, bias):
        return batch_norm_eval(x, running_mean, running_var, weight, bias.detach())

    with pytest.raises(CheckFailed) as info:
        assert_same_as_reference(bias_gradient_lost, batch_norm_by_hand, statistics_inputs, no_grad=(2, 1))
    assert str(info.value).endswith("dtype=torch.float32, seed=0, no_grad=(1, 2))")


def test_no_gradient_left_to_compare_is_noted():
    report = assert_same_as_reference(torch.mul, lambda x, y: y * x, lambda make: (make(3), make(3)), no_grad=(0, 1))
    assert report.gradients == []
    assert "no gradient was compared: no_grad=(0, 1) leaves no floating input or parameter" in report.notes


def test_the_hint_is_left_out_where_it_cannot_help():
    def candidate(x):  # a parameter-like tensor that requires grad, created inside: neither option reaches it
        return torch.nn.functional.batch_norm(x, torch.zeros(6, requires_grad=True), torch.ones(6), training=False)

    _, notes = crash(RuntimeError, lambda: assert_same_as_reference(candidate, torch.nn.functional.relu, lambda make: (make(4, 6),), check_grad=False))
    assert "not differentiable with respect to argument 'running_mean'" in notes
    assert "hint:" not in notes

    def own_error(x):
        raise ValueError("no closed-form derivative for degree > 2 splines")

    _, notes = crash(ValueError, lambda: assert_same_as_reference(own_error, torch.sin, lambda make: (make(3),)))
    assert "hint:" not in notes


def test_keyword_inputs_via_args_reach_both_sides():
    def candidate(x, *, dim):
        return torch.log_softmax(x, dim)

    def reference(x, *, dim):
        return x - torch.logsumexp(x, dim, keepdim=True)

    assert_same_as_reference(candidate, reference, lambda make: Args(make(4, 6), dim=1))


# --- a reference that disagrees with its own float64 run ---------------------------------


def dropout_drawing_per_dtype(x):
    if x.dtype == torch.float64:
        torch.rand(7)  # draws differently in float64, as a dtype-specific kernel may
    return torch.nn.functional.dropout(x, 0.5, training=True)


def test_when_the_truth_disagrees_with_the_reference_a_match_with_the_reference_passes_with_a_note():
    report = assert_same_as_reference(
        lambda x: torch.nn.functional.dropout(x * 1.0, 0.5, training=True),
        dropout_drawing_per_dtype,
        lambda make: (make(6, 10),),
    )
    assert any("far beyond rounding" in n and "matched the reference in float32" in n for n in report.notes)


def test_and_its_error_then_excuses_nothing():
    with pytest.raises(CheckFailed, match="the candidate matched neither"):
        assert_same_as_reference(
            lambda x: torch.nn.functional.dropout(x * 1.2, 0.5, training=True),
            dropout_drawing_per_dtype,
            lambda make: (make(6, 10),),
        )


def test_the_number_of_random_trials_is_configurable():
    report = assert_same_as_reference(torch.sin, torch.sin, lambda make: (make(3),), trials=1)
    assert report.kinds == ["random", "layout", "large", "small", "offset"]


def test_complex_outputs_and_gradients_are_judged_too():
    def dft(x):
        n = x.shape[-1]
        k = torch.arange(n)
        w = torch.exp(-2j * torch.pi * k[:, None] * k[None, :] / n).to(x.dtype)
        return x @ w.T

    inputs = lambda make: (make(4, 16, dtype=torch.complex64),)  # noqa: E731
    report = assert_same_as_reference(dft, torch.fft.fft, inputs)
    assert report.truth.startswith("float64")
    with pytest.raises(CheckFailed, match="elements differ"):
        assert_same_as_reference(lambda x: dft(x).conj(), torch.fft.fft, inputs)


def test_a_declared_in_place_write_passes_against_the_same_function():
    # The extra no_grad run must start from the inputs as built, not from the
    # values the reference already wrote into the declared argument.
    def add_into(out, x):
        return out.add_(x)

    report = assert_same_as_reference(
        add_into, add_into, lambda make: (make(3), make(3)), mutates=(0,), check_grad=False
    )
    assert report.trials


def test_a_wrong_in_place_write_into_a_declared_argument_still_fails():
    def add_into(out, x):
        return out.add_(x)

    def sub_into(out, x):
        return out.sub_(x)

    with pytest.raises(CheckFailed, match="input 0 after the call"):
        assert_same_as_reference(
            sub_into, add_into, lambda make: (make(3), make(3)), mutates=(0,), check_grad=False
        )


# --- memory -------------------------------------------------------------------------


def _tensors_over(elements: int) -> list[torch.Tensor]:
    import gc

    return [o for o in gc.get_objects() if type(o) in (torch.Tensor, torch.nn.Parameter) and o.numel() >= elements]


@pytest.mark.parametrize("structure", ["tensor", "tuple", "dict"])
def test_a_check_frees_its_outputs_and_buffers_when_it_returns_without_the_garbage_collector(structure):
    # Reference cycles would keep each check's outputs, autograd graphs and
    # reused buffers (over 1 GiB at 4096 x 4096) until a full collection.
    import gc
    import weakref

    outputs = []

    def wrap(out, x):
        return {"tensor": out, "tuple": (out, x.sum()), "dict": {"out": out, "total": x.sum()}}[structure]

    def doubled(x):
        out = x * 2
        outputs.append(weakref.ref(out))
        return wrap(out, x)

    size = 1 << 20  # large enough for the reused copies and cotangents
    assert _tensors_over(size) == []
    gc.disable()
    try:
        assert_same_as_reference(doubled, lambda x: wrap(x + x, x), lambda make: (make(1024, 1024),))
        left = _tensors_over(size)
        alive = [ref for ref in outputs if ref() is not None]
    finally:
        gc.enable()
    assert outputs and not alive, f"{len(alive)} of the candidate's {len(outputs)} outputs outlived the check"
    assert left == [], [(tuple(t.shape), t.dtype) for t in left]


def test_a_module_check_keeps_no_copy_of_the_parameters_after_it_returns():
    import gc

    candidate = torch.nn.Linear(1024, 1024)
    reference = copy.deepcopy(candidate)
    mine = {candidate.weight.data_ptr(), reference.weight.data_ptr()}
    gc.disable()
    try:
        assert_same_as_reference(candidate, reference, lambda make: (make(4, 1024),), trials=1)
        copies = [t for t in _tensors_over(1 << 20) if t.data_ptr() not in mine]
    finally:
        gc.enable()
    assert copies == [], [(t.dtype, type(t).__name__) for t in copies]
