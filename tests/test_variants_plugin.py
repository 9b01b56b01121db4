"""The variant axis: option, ini, marker, fixture, ids, skips; custom ops through the fixture.

Compiling is slow on a CPU (seconds per graph), so only one test here
compiles, on tiny inputs; the rest collect or run the eager variant. The
compiling run asks for ``compile_loaded`` (tests/conftest.py) first, so that
torch.compile's one-time registrations happen outside pytester.
"""

from __future__ import annotations

import pytest

SAME = """
import torch

def rows(make):
    return (make(4, 3),)

def test_same(assert_same_as_reference, variant):
    assert_same_as_reference(lambda x: 2 * x.sin(), lambda x: torch.sin(x) * 2, rows)

def test_plain_gradcheck(gradcheck):
    gradcheck(torch.sin, rows)
"""


def test_by_default_only_eager_runs_and_ids_are_unchanged(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(SAME)
    result = pytester.runpytest("-v")
    result.stdout.fnmatch_lines(["*::test_same[[]cpu-float32[]] PASSED*", "*::test_plain_gradcheck[[]cpu[]] PASSED*"])
    result.assert_outcomes(passed=2)
    assert "compile" not in result.stdout.str()


@pytest.mark.parametrize(
    "how",
    [
        ("--effective-torch-variants=eager,compile",),
        ("--effective-torch-variants=eager", "--effective-torch-variants=compile"),
        ("ini",),
    ],
    ids=["comma-list", "repeated-flag", "ini"],
)
def test_eager_ids_stay_and_compile_adds_a_suffix_gradcheck_is_not_multiplied(
    pytester: pytest.Pytester, how: tuple[str, ...]
) -> None:
    pytester.makepyfile(SAME)
    args: tuple[str, ...] = how
    if how == ("ini",):
        pytester.makeini("[pytest]\neffective_torch_variants = eager compile\n")
        args = ()
    result = pytester.runpytest("--collect-only", "-q", "--dtype=float32,float64", *args)
    result.stdout.fnmatch_lines(
        [
            "*::test_same[[]cpu-float32[]]",
            "*::test_same[[]cpu-float32-compile[]]",
            "*::test_same[[]cpu-float64[]]",
            "*::test_same[[]cpu-float64-compile[]]",
            "*::test_plain_gradcheck[[]cpu[]]",
            "5 tests collected*",
        ]
    )


def test_the_header_names_the_variants_and_where_they_came_from(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(SAME)
    result = pytester.runpytest("--collect-only", "--effective-torch-variants=eager,compile")
    result.stdout.fnmatch_lines(["effective-torch: variants: eager, compile [[]command line[]]*"])


@pytest.mark.parametrize("where", ["cli", "ini"])
def test_a_bad_variant_stops_the_run_naming_the_value_and_its_source(pytester: pytest.Pytester, where: str) -> None:
    pytester.makepyfile(SAME)
    if where == "ini":
        pytester.makeini("[pytest]\neffective_torch_variants = eager,compiled\n")
        result = pytester.runpytest()
        source = "ini option effective_torch_variants"
    else:
        result = pytester.runpytest("--effective-torch-variants=eager,compiled")
        source = "command line"
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        [f"ERROR: Invalid variant 'eager,compiled' from {source}: expected eager and/or compile, e.g. eager,compile"]
    )


def test_the_variants_marker_chooses_without_the_option_and_intersects_with_it(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        import pytest

        @pytest.mark.variants("compile")
        def test_compiled_only(variant):
            assert variant == "compile"

        @pytest.mark.variants("eager", "compile")
        def test_both(variant, device):
            pass

        def test_unmarked(variant):
            assert variant == "eager"
        """
    )
    result = pytester.runpytest("-v")
    result.stdout.fnmatch_lines(
        [
            "*::test_compiled_only[[]compile[]] PASSED*",
            "*::test_both[[]cpu[]] PASSED*",
            "*::test_both[[]cpu-compile[]] PASSED*",
            "*::test_unmarked PASSED*",
        ]
    )
    result = pytester.runpytest("-v", "-rs", "--effective-torch-variants=eager")
    result.stdout.fnmatch_lines(
        [
            "*::test_compiled_only[[]compile[]] SKIPPED*",
            "*runs in variants compile; selected: eager (run with --effective-torch-variants=compile)*",
        ]
    )
    result.assert_outcomes(passed=2, skipped=1)


def test_a_bad_variants_marker_errors_on_its_test_only(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        import pytest

        @pytest.mark.variants("compiled")
        def test_typo(assert_same_as_reference):
            pass

        def test_fine(assert_same_as_reference):
            pass
        """
    )
    result = pytester.runpytest("-v")
    result.stdout.fnmatch_lines(
        ["*Invalid @pytest.mark.variants in test_a_bad_variants_marker_errors_on_its_test_only.py::test_typo: "
         "variant must be one of eager, compile; got 'compiled'*"]
    )
    result.assert_outcomes(passed=1, errors=1)


OPS = """
import pytest
import torch

@torch.library.custom_op("pet_fixture::no_fake", mutates_args=())
def no_fake(x: torch.Tensor) -> torch.Tensor:
    return torch.sin(x)

@torch.library.custom_op("pet_fixture::with_fake", mutates_args=())
def with_fake(x: torch.Tensor) -> torch.Tensor:
    return torch.sin(x)

@with_fake.register_fake
def _(x):
    return torch.empty_like(x)

def rows(make):
    return (make(5, 4),)

def test_without_fake(assert_same_as_reference):
    assert_same_as_reference(no_fake, torch.sin, rows, check_grad=False)

def test_with_fake(assert_same_as_reference):
    assert_same_as_reference(with_fake, torch.sin, rows, check_grad=False)

@pytest.mark.opcheck(False)
def test_without_fake_opcheck_off(assert_same_as_reference):
    assert_same_as_reference(no_fake, torch.sin, rows, check_grad=False)

@pytest.mark.opcheck("off")
def test_bad_marker(assert_same_as_reference):
    pass
"""


# ---------------------------------------------------------------- compiled runs

# The softmax and shape of docs/custom_ops_and_compile.md's example: inductor's
# on-disk cache then compiles their graphs once for both tests. The wrong
# check reuses the same compiled candidate against a wrong reference.
COMPILED = """
import torch

def logits(make):
    return (make(8, 16),)

def softmax_rows(x):
    e = torch.exp(x - x.amax(-1, keepdim=True))
    return e / e.sum(-1, keepdim=True)

def test_same(assert_same_as_reference, variant):
    report = assert_same_as_reference(softmax_rows, lambda x: torch.softmax(x, -1), logits)
    print(f"REPORT {variant}: {report}")

def test_wrong(assert_same_as_reference):
    assert_same_as_reference(softmax_rows, lambda x: torch.softmax(x, 0), logits)

def test_faster(assert_faster_than_reference):
    assert_faster_than_reference(softmax_rows, softmax_rows, logits, min_speedup=None, time_budget=0.3)
"""


def test_the_compile_variant_checks_and_times_the_compiled_candidate_with_compile_time_apart(
    compile_loaded: None, pytester: pytest.Pytester
) -> None:
    pytester.makepyfile(test_compiled=COMPILED)
    result = pytester.runpytest("-v", "-s", "-p", "no:randomly", "--effective-torch-variants=compile")
    result.stdout.fnmatch_lines(
        [
            "*::test_same[[]cpu-float32-compile[]] REPORT compile: *",
            "note: compile: * s in the first calls of * input signature(s) "
            "(torch.compile(mode='default', dynamic=False); reference and truth eager)",
        ]
    )
    out = result.stdout.str()
    # the wrong candidate is caught compiled too, and the rerun line selects the variant
    assert "test_wrong[cpu-float32-compile] FAILED" in out
    assert "rerun: pytest 'test_compiled.py::test_wrong[cpu-float32-compile]'" in out
    assert "--effective-torch-variants=compile" in out
    result.stdout.fnmatch_lines(
        [
            "*test_compiled.py::test_faster[[]cpu-float32-compile[]]*cpu*float32*measured (not asserted)*",
            "test_compiled.py::test_faster[[]cpu-float32-compile[]]: compile: * s (first call, not timed; "
            "torch.compile(mode='default', dynamic=False))",
        ]
    )
    result.assert_outcomes(passed=2, failed=1)


def test_without_a_cxx_compiler_compile_skips_and_custom_ops_still_get_opcheck(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A fresh process: inductor reads CXX when it is imported. opcheck needs
    # no C++ compiler (its AOT test uses the aot_eager backend), so the
    # custom-op tests share this run.
    monkeypatch.setenv("CXX", "/nonexistent/g++")
    pytester.makepyfile(SAME, test_ops=OPS)
    result = pytester.runpytest_subprocess("-v", "-rs", "--effective-torch-variants=eager,compile")
    result.stdout.fnmatch_lines(
        [
            "*::test_same[[]cpu-float32[]] PASSED*",
            "*::test_same[[]cpu-float32-compile[]] SKIPPED*",
            "*variant compile skipped: torch.compile on the CPU needs a working C++ compiler "
            "(install g++ or set CXX): No working C++ compiler found*",
        ]
    )
    out = result.stdout.str()
    # the skip is reported at the test that chose the variant, not at a line of the plugin
    skip_lines = [line for line in out.splitlines() if line.startswith("SKIPPED [")]
    assert skip_lines and all("pytest_effective_torch" not in line for line in skip_lines), skip_lines
    for line in (
        "test_ops.py::test_without_fake[cpu-float32] FAILED",
        "test_ops.py::test_with_fake[cpu-float32] PASSED",
        "test_ops.py::test_without_fake_opcheck_off[cpu-float32] PASSED",
    ):
        assert line in out, line
    result.stdout.fnmatch_lines(
        [
            "*opcheck test_faketensor: There was no fake impl registered for <CustomOpDef(pet_fixture::no_fake)>*",
            "*opcheck test_aot_dispatch_dynamic: *",
        ]
    )
    result.stdout.fnmatch_lines(
        ["*Invalid @pytest.mark.opcheck in test_ops.py::test_bad_marker*: takes one argument, True or False "
         "(opcheck(False) turns it off); got opcheck('off')*"]
    )
    # eager: test_same, gradcheck, two op tests pass; compiled, those three skip; the bad marker errors in both
    result.assert_outcomes(passed=4, failed=1, skipped=4, errors=2)
