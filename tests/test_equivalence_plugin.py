"""The assert_same_as_reference and gradcheck fixtures, driven through pytester."""

from __future__ import annotations

import re
import shlex

import pytest

# Inner runs skip plugins this file does not need: pytester re-imports them
# on every run, and hypothesis alone costs seconds each time.
_LEAN = ("-p", "no:hypothesispytest", "-p", "no:xdist")


def run(pytester: pytest.Pytester, *args: str) -> pytest.RunResult:
    return pytester.runpytest(*_LEAN, *args)


GOOD_AND_BAD = """
    import torch

    def stable_softmax(x):
        e = torch.exp(x - x.amax(-1, keepdim=True))
        return e / e.sum(-1, keepdim=True)

    def unstable_softmax(x):
        e = torch.exp(x)
        return e / e.sum(-1, keepdim=True)

    def inputs(make):
        return (make(4, 7),)

    def test_stable(assert_same_as_reference):
        assert_same_as_reference(stable_softmax, lambda x: torch.softmax(x, -1), inputs)

    def test_unstable(assert_same_as_reference):
        assert_same_as_reference(unstable_softmax, lambda x: torch.softmax(x, -1), inputs)
"""


def test_assert_same_multiplies_over_dtypes_and_gradcheck_does_not(pytester: pytest.Pytester):
    pytester.makepyfile(
        GOOD_AND_BAD
        + """
    def test_tanh(gradcheck):
        report = gradcheck(torch.tanh, lambda make: (make(2, 3),))
        assert report.dtype == "float64"
    """
    )
    result = run(pytester, "-v", "--dtype=float32,float64", "-k", "test_stable or test_tanh")
    result.assert_outcomes(passed=3)
    result.stdout.fnmatch_lines_random(
        [
            "*test_stable?cpu-float32? PASSED*",
            "*test_stable?cpu-float64? PASSED*",
            "*test_tanh?cpu? PASSED*",
        ]
    )


def test_a_failure_ends_with_a_rerun_line_naming_the_seed_device_and_dtype(pytester: pytest.Pytester):
    pytester.makepyfile(GOOD_AND_BAD)
    result = run(pytester, "--effective-torch-seed=7")
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(
        [
            "*CheckFailed: candidate differs from reference: 2 problems in trial 5 of 7 (large magnitude)*",
            "*candidate is non-finite where the reference is finite*",
            "*rerun: pytest 'test_a_failure_ends_with_a_rerun_line_naming_the_seed_device_and_dtype.py"
            "::test_unstable?cpu-float32?' --effective-torch-seed=7 --effective-torch-device=cpu "
            "--effective-torch-dtype=float32",
        ]
    )


def test_the_rerun_line_from_real_output_reproduces_the_same_failure(pytester: pytest.Pytester):
    pytester.makepyfile(
        """
        import torch

        def test_off_sometimes(assert_same_as_reference):
            def candidate(x):
                return torch.where(x > 8, x * 1.01, x)

            assert_same_as_reference(candidate, lambda x: x * 1.0, lambda make: (make(50),))
        """
    )
    first = run(pytester, "--effective-torch-seed=random")
    first.assert_outcomes(failed=1)
    text = first.stdout.str()
    rerun = re.search(r"^E?\s*rerun: (pytest .*)$", text, re.MULTILINE)
    assert rerun, text
    worst = re.search(r"worst at index .*", text)
    assert worst
    args = shlex.split(rerun.group(1))[1:]
    assert any(a.startswith("--effective-torch-seed=") for a in args)
    second = run(pytester, *args)
    second.assert_outcomes(failed=1)
    assert worst.group(0) in second.stdout.str()


def test_the_tolerance_marker_overrides_the_automatic_tolerance_and_call_arguments_win(
    pytester: pytest.Pytester,
):
    pytester.makepyfile(
        """
        import pytest

        def off(x):
            return x + 1e-3

        def same(x):
            return x * 1.0

        inputs = lambda make: (make(10),)

        def test_automatic(assert_same_as_reference):
            assert_same_as_reference(off, same, inputs)

        @pytest.mark.tolerance(atol=1e-2)
        def test_marker(assert_same_as_reference):
            assert_same_as_reference(off, same, inputs)

        @pytest.mark.tolerance(atol=1e-2)
        def test_call_wins(assert_same_as_reference):
            assert_same_as_reference(off, same, inputs, atol=1e-5)
        """
    )
    result = run(pytester)
    result.assert_outcomes(passed=1, failed=2)
    result.stdout.fnmatch_lines(["*test_automatic*", "*test_call_wins*"])
    assert "FAILED test_the_tolerance_marker_overrides_the_automatic_tolerance_and_call_arguments_win.py::test_marker" not in result.stdout.str()


@pytest.mark.parametrize(
    ("marker", "why"),
    [
        ("tolerance(rtl=1e-3)", "unknown argument(s) ['rtl']; accepted: atol, rtol"),
        ("tolerance(1e-3)", "takes keyword arguments atol= and rtol= only, got (0.001,)"),
        ("tolerance(atol=-1)", "atol must be a finite number >= 0, got -1.0"),
    ],
)
def test_a_bad_tolerance_marker_errors_its_own_test_with_one_line(pytester: pytest.Pytester, marker, why):
    pytester.makepyfile(
        f"""
        import pytest

        @pytest.mark.{marker}
        def test_it(assert_same_as_reference):
            pass

        def test_other(assert_same_as_reference):
            pass
        """
    )
    result = run(pytester)
    result.assert_outcomes(passed=1, errors=1)
    out = result.stdout.str()
    assert "\nInvalid @pytest.mark.tolerance in " in out
    assert f"::test_it[cpu-float32]: {why}\n" in out
    assert "UsageError" not in out and "pytest_effective_torch" not in out and "Traceback" not in out

def test_several_checks_in_one_test_draw_different_inputs_and_name_the_failing_call(
    pytester: pytest.Pytester,
):
    pytester.makepyfile(
        """
        import torch

        seen = []

        def test_two(assert_same_as_reference):
            def spy(x):
                seen.append(x.detach().clone())
                return x * 2
            assert_same_as_reference(spy, lambda x: x + x, lambda make: (make(3),))
            assert_same_as_reference(spy, lambda x: x + x, lambda make: (make(3),))
            assert not torch.equal(seen[0], seen[6])
            assert_same_as_reference(lambda x: x * 3, lambda x: x + x, lambda make: (make(3),))
        """
    )
    result = run(pytester)
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*rerun: pytest *test_two* (check #3 in this test)*"])


def test_a_builder_that_raises_shows_the_users_frame_not_the_engines(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        import torch

        def build_inputs(make):
            raise RuntimeError("my builder broke")

        def build_bare_tensor(make):
            return make(3)

        def test_raises(assert_same_as_reference):
            assert_same_as_reference(torch.neg, torch.neg, build_inputs)

        def test_bare(assert_same_as_reference):
            assert_same_as_reference(torch.neg, torch.neg, build_bare_tensor)
        """
    )
    result = pytester.runpytest()
    result.assert_outcomes(failed=2)
    text = result.stdout.str()
    result.stdout.fnmatch_lines(
        [
            '*raise RuntimeError("my builder broke")',
            "E*RuntimeError: my builder broke",
            "*effective-torch: while building the inputs in trial 1*",
        ]
    )
    result.stdout.fnmatch_lines(
        ["E*TypeError: the inputs builder's return value must be a tuple of positional arguments or Args*"]
    )
    for internal in ("_engine.py", "_inputs.py", "_equivalence.py"):
        assert internal not in text, internal


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (
            "assert_same_as_reference(torch.sin, torch.sin, torch.ones(3))",
            "TypeError: inputs must be a tuple of arguments, Args(*args, **kwargs), or a builder inputs(make); "
            "got Tensor (wrap a single tensor as (x,))",
        ),
        (
            "assert_same_as_reference(torch.nn.Linear(2, 2), torch.nn.Linear(2, 2), (torch.ones(1, 2),), "
            "param_map={'wieght': 'weight'})",
            "ValueError: param_map names unknown parameters: candidate ['wieght'], reference []; "
            "candidate has ['bias', 'weight'], reference has ['bias', 'weight']",
        ),
        (
            "assert_same_as_reference(torch.sin, torch.sin, (torch.ones(3),), param_map=3)",
            "TypeError: param_map must be a dict {candidate parameter name: reference parameter name} "
            "or a callable mapping the reference's gradients by name; got int",
        ),
    ],
)
def test_a_bad_argument_shows_the_callers_line_and_no_plugin_frames(pytester: pytest.Pytester, call, message):
    pytester.makepyfile(
        f"""
        import torch

        def test_it(assert_same_as_reference):
            {call}
        """
    )
    result = run(pytester)
    result.assert_outcomes(failed=1)
    out = result.stdout.str()
    assert f"E       {message}" in out
    assert "pytest_effective_torch/" not in out  # no frame of the plugin's files
