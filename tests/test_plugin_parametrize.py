"""Which tests are multiplied, their ids, the markers, seeds and xdist."""

from __future__ import annotations

import re
import shlex

import pytest


def test_tests_without_plugin_fixtures_are_not_multiplied(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        def test_plain():
            pass

        def test_bound(device):
            pass
        """
    )
    result = pytester.runpytest("-v", "--dtype=float32,float64")
    result.stdout.fnmatch_lines(["*::test_plain PASSED*", "*::test_bound[[]cpu[]] PASSED*"])
    result.assert_outcomes(passed=2)


def test_fixtures_that_depend_on_device_and_dtype_multiply_through_them(
    pytester: pytest.Pytester,
) -> None:
    pytester.makepyfile(
        """
        import torch

        def test_made(make_tensor, device, dtype):
            x = make_tensor(2, 3)
            i = make_tensor(50, dtype=torch.long, high=10)
            assert x.device == device and x.dtype == dtype and x.shape == (2, 3)
            assert i.dtype == torch.long and int(i.min()) >= 0 and int(i.max()) < 10
        """
    )
    result = pytester.runpytest("-v", "--dtype=float32,float64")
    result.stdout.fnmatch_lines(
        ["*::test_made[[]cpu-float32[]] PASSED*", "*::test_made[[]cpu-float64[]] PASSED*"]
    )
    result.assert_outcomes(passed=2)


def test_user_parametrization_of_dtype_wins(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        import pytest, torch

        @pytest.mark.parametrize("dtype", [torch.int32, torch.int64], ids=["i32", "i64"])
        def test_mine(device, dtype, make_tensor):
            assert make_tensor(4).dtype == dtype
        """
    )
    result = pytester.runpytest("-v", "--dtype=float32,float64")
    result.stdout.fnmatch_lines(["*test_mine[[]cpu-i32[]] PASSED*", "*test_mine[[]cpu-i64[]] PASSED*"])
    result.assert_outcomes(passed=2)


def test_user_parametrization_of_device_wins(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        import pytest

        @pytest.mark.parametrize("device", ["meta"])
        def test_mine(device, dtype):
            assert device == "meta"
        """
    )
    result = pytester.runpytest("-v")
    result.stdout.fnmatch_lines(["*test_mine[[]float32-meta[]] PASSED*"])


def test_a_project_fixture_named_device_is_left_alone(pytester: pytest.Pytester) -> None:
    pytester.makeconftest(
        """
        import pytest

        @pytest.fixture
        def device():
            return "project-device"
        """
    )
    pytester.makepyfile("def test_mine(device):\n    assert device == 'project-device'\n")
    result = pytester.runpytest("-v")
    result.stdout.fnmatch_lines(["*::test_mine PASSED*"])


def test_devices_marker_skips_with_what_is_needed_and_selected(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        import pytest

        @pytest.mark.devices("cuda")
        def test_gpu_only(device):
            pass

        @pytest.mark.devices("cpu", "cuda")
        def test_either(device):
            assert device.type == "cpu"
        """
    )
    result = pytester.runpytest("-v", "-rs")
    result.stdout.fnmatch_lines(
        [
            "*test_gpu_only[[]cuda[]] SKIPPED*",
            "*test_either[[]cpu[]] PASSED*",
            "SKIPPED [[]1[]] *: needs device cuda; selected: cpu (run with --device=cuda)",
        ]
    )
    result.assert_outcomes(passed=1, skipped=1)


def test_a_devices_marker_for_missing_hardware_skips_with_dtype_too(pytester: pytest.Pytester) -> None:
    # The placeholder param for an unselected device must not be probed for
    # its capabilities (that would initialise CUDA on a machine without it).
    pytester.makepyfile(
        """
        import pytest

        @pytest.mark.devices("cuda")
        def test_gpu_only(device, dtype):
            pass
        """
    )
    result = pytester.runpytest("-v", "--dtype=bfloat16")
    result.stdout.fnmatch_lines(["*test_gpu_only[[]cuda-bfloat16[]] SKIPPED*"])
    result.assert_outcomes(skipped=1)


def test_a_bad_devices_marker_errors_its_test_and_the_session_runs_on(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        import pytest

        @pytest.mark.devices("gpu")
        def test_x(device):
            pass

        def test_other(device):
            pass
        """
    )
    result = pytester.runpytest()
    result.assert_outcomes(passed=1, errors=1)
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.fnmatch_lines(
        [
            "*ERROR at setup of test_x[[]invalid-devices-marker]*",
            "Invalid @pytest.mark.devices in *test_x: unknown device 'gpu'; valid: cpu, cuda, cuda:N, mps, all, auto",
        ]
    )
    # One clear line: no traceback through the plugin or pluggy.
    out = result.stdout.str()
    assert "INTERNALERROR" not in out and "Traceback" not in out and "pytest_effective_torch" not in out


def test_dtypes_marker_runs_its_list_without_explicit_dtype(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        import pytest, torch

        @pytest.mark.dtypes(torch.float16, "float64")
        def test_x(dtype):
            pass
        """
    )
    result = pytester.runpytest("-v")
    result.stdout.fnmatch_lines(["*test_x[[]float16[]] PASSED*", "*test_x[[]float64[]] PASSED*"])
    result.assert_outcomes(passed=2)


def test_dtypes_marker_intersects_with_explicit_dtype(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        import pytest, torch

        @pytest.mark.dtypes(torch.float16, torch.float32)
        def test_both(dtype):
            pass

        @pytest.mark.dtypes(torch.float16)
        def test_half_only(dtype):
            pass
        """
    )
    result = pytester.runpytest("-v", "-rs", "--dtype=float32,float64")
    result.stdout.fnmatch_lines(
        [
            "*test_both[[]float32[]] PASSED*",
            "*test_half_only[[]float16[]] SKIPPED*",
            "SKIPPED [[]1[]] *: supports dtypes float16; selected: float32, float64",
        ]
    )
    result.assert_outcomes(passed=1, skipped=1)


def test_a_bad_dtypes_marker_lists_valid_names_on_its_test_only(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        import pytest

        @pytest.mark.dtypes("flaot16")
        def test_x(dtype):
            pass

        @pytest.mark.dtypes("float16")
        def test_other(dtype):
            pass
        """
    )
    result = pytester.runpytest()
    result.assert_outcomes(passed=1, errors=1)
    result.stdout.fnmatch_lines(["Invalid @pytest.mark.dtypes in *test_x: unknown dtype 'flaot16'; valid: float32*"])
    assert "INTERNALERROR" not in result.stdout.str() and "Traceback" not in result.stdout.str()


RECORD = """
import json, pathlib

def record(name, value):
    with pathlib.Path("values.jsonl").open("a") as f:
        f.write(json.dumps([name, value]) + "\\n")
"""


def _recorded(pytester: pytest.Pytester, *args: str) -> dict[str, object]:
    import json

    path = pytester.path / "values.jsonl"
    path.unlink(missing_ok=True)
    assert pytester.runpytest(*args).ret == 0
    return dict(json.loads(line) for line in path.read_text().splitlines())


def test_seed_is_stable_across_runs_and_selection(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        RECORD
        + """
def test_a(seed, make_tensor):
    record("a", [seed, make_tensor(3).tolist()])

def test_b(seed, make_tensor):
    record("b", [seed, make_tensor(3).tolist()])
"""
    )
    both = _recorded(pytester)
    assert set(both) == {"a", "b"}
    assert _recorded(pytester) == both
    assert _recorded(pytester, "-k", "test_b") == {"b": both["b"]}
    assert both["a"] != both["b"]  # each test has its own seed
    assert _recorded(pytester, "--effective-torch-seed=1")["a"] != both["a"]


def test_the_global_rng_is_seeded_for_plugin_tests(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        RECORD
        + """
import torch

def test_a(seed):
    record("a", torch.rand(2).tolist())
"""
    )
    first = _recorded(pytester)
    assert first and _recorded(pytester) == first


def test_a_random_seed_round_trips_through_the_printed_rerun_line(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        def test_fails(make_tensor):
            assert False, "VALUES " + repr(make_tensor(4).tolist())
        """
    )
    first = pytester.runpytest("--effective-torch-seed=random", "--dtype=float64")
    text = first.stdout.str()
    header_seed = re.search(r"seed: --effective-torch-seed=(\d+) \(drawn at random\)", text)
    assert header_seed, text
    rerun = re.search(r"^rerun: pytest (.*)$", text, re.MULTILINE)
    assert rerun, text
    args = shlex.split(rerun.group(1))
    assert f"--effective-torch-seed={header_seed.group(1)}" in args
    assert "--effective-torch-dtype=float64" in args
    values = re.search(r"VALUES (\[.*?\])", text)
    assert values

    second = pytester.runpytest(*args)
    second.assert_outcomes(failed=1)
    assert f"VALUES {values.group(1)}" in second.stdout.str()


def test_passing_tests_get_no_rerun_section(pytester: pytest.Pytester) -> None:
    pytester.makepyfile("def test_ok(seed):\n    pass\n")
    result = pytester.runpytest()
    assert "rerun:" not in result.stdout.str()


def test_xdist_workers_share_seeds_and_ids(pytester: pytest.Pytester) -> None:
    pytest.importorskip("xdist")
    pytester.makepyfile(
        """
        def test_a(seed, make_tensor):
            assert False, "VALUES " + repr(make_tensor(2).tolist())

        def test_b(seed, make_tensor):
            assert False, "VALUES " + repr(make_tensor(2).tolist())
        """
    )
    serial = pytester.runpytest("--effective-torch-seed=5")
    parallel = pytester.runpytest_subprocess("-n", "2", "--effective-torch-seed=5", "-p", "no:cacheprovider")
    parallel.assert_outcomes(failed=2)

    def found(result: pytest.RunResult) -> list[str]:
        return sorted(re.findall(r"VALUES \[[^\]]*\]", result.stdout.str()))

    assert found(serial) == found(parallel) and len(found(serial)) >= 2
