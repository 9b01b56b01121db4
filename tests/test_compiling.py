"""The compile variant's arguments: bad values are clear errors before anything compiles."""

from __future__ import annotations

import pytest
import torch

from pytest_effective_torch import assert_faster_than_reference, assert_same_as_reference
from pytest_effective_torch.compiling import CompileSettings, check_compile_options, check_variant

ROWS = lambda make: (make(4, 3),)  # noqa: E731


def test_variants_are_named_case_insensitively_and_anything_else_is_refused():
    assert check_variant(" Compile ") == "compile"
    with pytest.raises(ValueError, match=r"variant must be one of eager, compile; got 'compiled'"):
        check_variant("compiled")


def test_the_default_compile_is_described_with_its_mode_and_dynamic_shapes_off():
    assert CompileSettings().describe() == "torch.compile(mode='default', dynamic=False)"
    settings = check_compile_options({"mode": "max-autotune", "fullgraph": True})
    assert settings.describe() == "torch.compile(mode='max-autotune', dynamic=False, fullgraph=True)"
    assert settings.kwargs() == {"dynamic": False, "fullgraph": True, "backend": "inductor", "mode": "max-autotune"}


@pytest.mark.parametrize(
    ("options", "error", "message"),
    [
        ("max-autotune", TypeError, "compile_options must be a dict of torch.compile arguments"),
        ({"modes": "x"}, ValueError, r"compile_options: unknown key\(s\) \['modes'\]; accepted: mode, dynamic"),
        ({"mode": 3}, TypeError, r"compile_options\['mode'\] must be a string"),
        ({"dynamic": "yes"}, TypeError, r"compile_options\['dynamic'\] must be True, False or None"),
        ({"mode": "reduce-overhead", "options": {"trace.enabled": True}}, ValueError, "give 'mode' or 'options', not both"),
    ],
)
def test_bad_compile_options_are_refused_by_both_checks_in_either_variant(options, error, message):
    for variant in ("eager", "compile"):
        with pytest.raises(error, match=message):
            assert_same_as_reference(torch.sin, torch.sin, ROWS, variant=variant, compile_options=options)
        with pytest.raises(error, match=message):
            assert_faster_than_reference(torch.sin, torch.sin, ROWS, variant=variant, compile_options=options)


def test_a_bad_variant_argument_is_a_value_error_in_both_checks():
    with pytest.raises(ValueError, match="variant must be one of eager, compile; got 'jit'"):
        assert_same_as_reference(torch.sin, torch.sin, ROWS, variant="jit")
    with pytest.raises(ValueError, match="variant must be one of eager, compile; got 'jit'"):
        assert_faster_than_reference(torch.sin, torch.sin, ROWS, variant="jit")


def test_compile_options_in_the_eager_variant_change_nothing():
    report = assert_same_as_reference(torch.sin, torch.sin, ROWS, compile_options={"mode": "max-autotune"})
    assert not any(note.startswith("compile: ") for note in report.notes)


def test_a_compiled_sweep_reports_its_compile_time_in_one_line_over_all_sizes(compile_loaded):
    def rows(make, *, n):
        return (make(3, n),)

    report = assert_same_as_reference(
        torch.sin, torch.sin, rows, sizes={"n": [2, 5, 9]}, variant="compile", compile_options={"backend": "eager"}
    )
    lines = [line for line in str(report).splitlines() if "compile: " in line]
    assert len(lines) == 1, str(report)
    assert "over 3 size(s) (torch.compile(mode='default', dynamic=False, backend='eager')" in lines[0]
    assert all(point.compiled is not None and point.compiled[1] >= 1 for point in report.points.values())
