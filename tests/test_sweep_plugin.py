"""Size sweeps through pytest: fixtures, per-point storage and summary rows, plots, the plots option.

The compared functions differ twentyfold, so every verdict here is deterministic.
"""

from __future__ import annotations

import json
import struct
import subprocess
import sys

import _speed_sources
import pytest

pytest_plugins = ["pytester"]

SOURCES = _speed_sources.BUSY + """

def square(make, *, n):
    return (make(48, 48),)


def tiled_sum(x):
    # forgets the last partial tile of 16 once there is more than one tile
    n = x.shape[-1]
    full = n // 16
    return x.sum(-1) if full <= 1 else x[..., : full * 16].sum(-1)


def rows(make, *, n):
    return (make(4, n),)
"""

SWEEP = """
def test_sweep(assert_faster_than_reference):
    assert_faster_than_reference(busy(1), busy(20), square, sizes={"n": [1, 2, 3]}, min_speedup=2,
                                 nbytes=lambda n: 1000 * n)
"""


@pytest.fixture
def warmed() -> None:
    """Import what cannot be imported twice, before pytester snapshots sys.modules.

    pytester drops the modules first imported inside an inner run; the CPU
    profiler's first use registers torch operators (a second registration
    raises), and matplotlib's extension modules are best loaded once.
    """
    import torch

    from pytest_effective_torch.speed.memory import peak_memory

    peak_memory(lambda: torch.ones(4) * 2, torch.device("cpu"))
    try:
        import matplotlib.backends.backend_agg
        import matplotlib.figure  # noqa: F401
    except ImportError:
        pass


def make_tests(pytester: pytest.Pytester, body: str) -> None:
    pytester.makepyfile(test_mine=SOURCES + body)


def run(pytester: pytest.Pytester, *args: str) -> pytest.RunResult:
    return pytester.runpytest("-p", "no:hypothesispytest", "-p", "no:cacheprovider", *args)


def png_size(path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", f"{path} is not a PNG"
    return struct.unpack(">II", data[16:24])


def test_each_point_is_one_benchmark_entry_named_after_it(pytester):
    make_tests(
        pytester,
        SWEEP
        + """
def grid(make, *, m, n):
    return (make(48, 48),)


def test_named(assert_faster_than_reference):
    assert_faster_than_reference(busy(1), busy(20), grid, sizes={"m": [1], "n": [5, 6]}, min_speedup=2, name="big")
""",
    )
    run(pytester, "--benchmark-json=out.json").assert_outcomes(passed=2)
    saved = json.loads((pytester.path / "out.json").read_text())["benchmarks"]
    assert [b["fullname"] for b in saved] == [
        "test_mine.py::test_sweep[cpu-float32][n=1]",
        "test_mine.py::test_sweep[cpu-float32][n=2]",
        "test_mine.py::test_sweep[cpu-float32][n=3]",
        "test_mine.py::test_named[cpu-float32]::big[m=1,n=5]",
        "test_mine.py::test_named[cpu-float32]::big[m=1,n=6]",
    ]
    assert saved[4]["params"] == {"device": "cpu", "dtype": "float32", "m": 1, "n": 6}
    first = saved[0]
    assert first["params"] == {"device": "cpu", "dtype": "float32", "n": 1}
    assert first["param"] == "cpu-float32-n=1"
    info = first["extra_info"]
    assert info["sweep_point"] == "n=1" and info["verdict"] == "pass"
    assert info["confidence"] == pytest.approx(1 - 0.001 / 3)
    assert info["nbytes"] == 1000 and info["nbytes_per_second"]["candidate"] > info["nbytes_per_second"]["reference"]

    # pytest-benchmark's own tool reads every point back
    compare = subprocess.run(
        [sys.executable, "-m", "pytest_benchmark", "compare", "out.json", "--columns=min,median,rounds"],
        cwd=pytester.path, capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert compare.returncode == 0, compare.stderr
    for name in ("test_sweep[cpu-float32][n=3]", "test_named[cpu-float32]::big[m=1,n=6]"):
        assert name in compare.stdout


def test_the_summary_has_one_row_per_point_with_the_achieved_rate(pytester):
    make_tests(pytester, SWEEP)
    result = run(pytester)
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(
        [
            "*- effective-torch speed verdicts -*",
            "test*device*dtype*reference*candidate*speedup [[]interval[]]*verdict*achieved",
            "test_mine.py::test_sweep[[]cpu-float32[]][[]n=1[]]*cpu*float32*pass (min 2x)*B/s",
            "test_mine.py::test_sweep[[]cpu-float32[]][[]n=2[]]*pass (min 2x)*B/s",
            "test_mine.py::test_sweep[[]cpu-float32[]][[]n=3[]]*pass (min 2x)*B/s",
        ]
    )


def test_a_sweep_that_falls_short_fails_naming_the_points_and_each_row_keeps_its_verdict(pytester):
    make_tests(
        pytester,
        """
def slow_when_small(x):
    return busy(1)(x[:48]) if x.shape[0] > 48 else busy(40)(x[:48])


def reference(x):
    return busy(20)(x[:48])


def sized(make, *, n):
    return (make(n * 48, 48),)


def test_mixed(assert_faster_than_reference):
    assert_faster_than_reference(slow_when_small, reference, sized, sizes={"n": [1, 2]}, min_speedup=2)
""",
    )
    result = run(pytester)
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        [
            "*CheckFailed: candidate slow_when_small is not faster than reference reference as required at 1 of 2 "
            "sizes of n=[[]1, 2[]]: n=1 (*x [[]*x, *x[]], needs > 2x)",
            "*rerun: pytest 'test_mine.py::test_mixed[[]cpu-float32[]]' --effective-torch-seed=0*",
        ]
    )
    result.stdout.fnmatch_lines(
        [
            "test_mine.py::test_mixed[[]cpu-float32[]][[]n=1[]]*fail (min 2x)",
            "test_mine.py::test_mixed[[]cpu-float32[]][[]n=2[]]*pass (min 2x)",
        ]
    )


def test_a_point_over_the_memory_ratio_fails_and_its_row_says_so(warmed, pytester):
    make_tests(
        pytester,
        """
def tiled(x):  # 8 copies of x at a time, at every size
    return x.unsqueeze(0).repeat(8, 1, 1).sum(0)


def scaled(x):
    return x * 8


def grows_with_n(x):  # 8 copies once n > 1
    return tiled(x) if x.shape[0] > 64 else scaled(x)


def sized(make, *, n):
    return (make(64 * n, 64),)


def test_memory(assert_faster_than_reference):
    assert_faster_than_reference(grows_with_n, tiled, sized, sizes={"n": [1, 2]}, min_speedup=None,
                                 max_memory_ratio=0.5)
""",
    )
    result = run(pytester)
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        ["*CheckFailed: at n=2: candidate grows_with_n needs too much memory: peak *"]
    )
    result.stdout.fnmatch_lines(
        [
            "test_mine.py::test_memory[[]cpu-float32[]][[]n=1[]]*measured (not asserted)",
            "test_mine.py::test_memory[[]cpu-float32[]][[]n=2[]]*fail (memory) (not asserted)",
        ]
    )


def test_an_equivalence_sweep_in_a_test_reports_the_boundary_and_how_to_rerun(pytester):
    make_tests(
        pytester,
        """
def test_tiles(assert_same_as_reference):
    assert_same_as_reference(tiled_sum, lambda x: x.sum(-1), rows, sizes={"n": [1, 16, 64, 100]})
""",
    )
    result = run(pytester, "--effective-torch-trials=5")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        [
            "*CheckFailed: candidate differs from reference at 1 of 4 sizes of n=[[]1, 16, 64, 100[]]: n=100 *",
            "*pass-to-fail boundary below n=100: n=64 passes, n=65 fails (bisected over n*",
            # the session's trials size single checks; a sweep's points keep their short plan
            "*at n=100: candidate differs from reference: 2 problems in trial 1 of 2 (random values)*",
            "*rerun: pytest 'test_mine.py::test_tiles[[]cpu-float32[]]' --effective-torch-seed=0*",
        ]
    )


def test_benchmark_disable_runs_each_point_once_and_skips(pytester):
    make_tests(pytester, SWEEP)
    result = run(pytester, "--benchmark-disable", "-rs")
    result.assert_outcomes(skipped=1)
    result.stdout.fnmatch_lines(
        ["*speed sweep skipped: benchmarks are disabled (--benchmark-disable); candidate and reference each ran once per size"]
    )


def test_a_speedup_drop_is_found_per_point_against_the_saved_run(pytester, monkeypatch):
    make_tests(
        pytester,
        """
def test_sweep(assert_faster_than_reference):
    reps = int(os.environ.get("CANDIDATE_REPS", "1"))
    # the candidate slows down at n=2 only
    assert_faster_than_reference(lambda x: busy(reps if n_of(x) == 2 else 1)(x), busy(40), sized,
                                 sizes={"n": [1, 2]}, min_speedup=2)


def n_of(x):
    return round(float(x[0, 0]))


def sized(make, *, n):
    x = make(48, 48)
    x[0, 0] = n
    return (x,)
""",
    )
    run(pytester, "--benchmark-save=base", "--benchmark-storage=store").assert_outcomes(passed=1)
    monkeypatch.setenv("CANDIDATE_REPS", "10")  # ~40x -> ~4x at n=2
    result = run(pytester, "--benchmark-storage=store", "--benchmark-compare", "--effective-torch-max-speedup-drop=50")
    result.assert_outcomes(passed=1)
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.fnmatch_lines(["SPEEDUP REGRESSION: test_mine.py::test_sweep[[]cpu-float32[]][[]n=2[]]: speedup *"])
    assert "[n=1]: speedup" not in result.stdout.str()


def test_under_xdist_every_point_still_gets_a_verdict_a_row_and_a_plot(warmed, pytester):
    pytest.importorskip("xdist")
    pytest.importorskip("matplotlib", reason="the plot extra (matplotlib) is not installed")
    make_tests(
        pytester,
        SWEEP
        + """
def test_same(assert_same_as_reference):
    assert_same_as_reference(tiled_sum, lambda x: x.sum(-1), rows, sizes={"n": [1, 16]})
""",
    )
    result = run(pytester, "-n", "2", "--effective-torch-plots=plots", "--dtype=float32,float64")
    result.assert_outcomes(passed=4)
    for dtype in ("float32", "float64"):
        for n in (1, 2, 3):
            result.stdout.fnmatch_lines([f"test_mine.py::test_sweep[[]cpu-{dtype}[]][[]n={n}[]]*pass (min 2x)*"])
        assert png_size(pytester.path / "plots" / f"test_mine.py-test_sweep-cpu-{dtype}.png") == (900, 648)
    result.stdout.fnmatch_lines(["pytest-benchmark storage off: pytest-benchmark is disabled under pytest-xdist"])


# --- plots ---------------------------------------------------------------------------


def test_the_plots_option_writes_a_png_and_a_csv_per_sweep(warmed, pytester):
    pytest.importorskip("matplotlib", reason="the plot extra (matplotlib) is not installed")
    make_tests(pytester, SWEEP)
    result = run(pytester, "--effective-torch-plots=plots")
    result.assert_outcomes(passed=1)
    png = pytester.path / "plots" / "test_mine.py-test_sweep-cpu-float32.png"
    result.stdout.fnmatch_lines(["plots (1, each with its data as CSV beside it): plots/test_mine.py-test_sweep-cpu-float32.png"])
    # time, speedup and bandwidth panels: two per row, 450 x 324 pixels each
    assert png_size(png) == (900, 648)
    table = png.with_suffix(".csv").read_text().splitlines()
    assert len(table) == 4 and table[0].startswith("mode,point,n,verdict")


def test_the_plots_directory_can_come_from_the_ini_file_and_plots_are_written_on_failure(warmed, pytester):
    pytest.importorskip("matplotlib", reason="the plot extra (matplotlib) is not installed")
    pytester.makeini("[pytest]\neffective_torch_plots = from_ini\n")
    make_tests(
        pytester,
        """
def test_slow(assert_faster_than_reference):
    assert_faster_than_reference(busy(20), busy(1), square, sizes={"n": [1, 2]}, min_speedup=2, name="x")
""",
    )
    result = run(pytester)
    result.assert_outcomes(failed=1)
    png = pytester.path / "from_ini" / "test_mine.py-test_slow-cpu-float32-x.png"
    assert png_size(png) == (900, 324)


def test_without_matplotlib_the_plots_option_stops_the_run_naming_the_extra(pytester, monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import matplotlib now raises ImportError
    make_tests(pytester, SWEEP)
    result = run(pytester, "--effective-torch-plots=plots")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        [
            "ERROR: --effective-torch-plots=plots (from command line) needs matplotlib, which is not installed: "
            "pip install 'pytest-effective-torch[plot]' (the plot extra)"
        ]
    )
    assert not (pytester.path / "plots").exists()


def test_a_plots_path_that_is_a_file_stops_the_run(pytester):
    pytest.importorskip("matplotlib", reason="the plot extra (matplotlib) is not installed")
    (pytester.path / "taken").write_text("not a directory")
    make_tests(pytester, SWEEP)
    result = run(pytester, "--effective-torch-plots=taken")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        ["ERROR: --effective-torch-plots=taken (from command line) names a file; expected a directory*"]
    )
