"""Options, their sources and precedence, usage errors, header, and opt-out."""

from __future__ import annotations

import pytest

TEST_FILE = """
def test_x(device, dtype):
    pass
"""


def test_it_runs_on_cpu_float32_by_default(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(TEST_FILE)
    result = pytester.runpytest("-v")
    result.stdout.fnmatch_lines(["*test_x[[]cpu-float32[]] PASSED*"])
    result.assert_outcomes(passed=1)


def test_comma_lists_and_repeated_flags_multiply_tests(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(TEST_FILE)
    result = pytester.runpytest("-v", "--device=cpu", "--dtype=float32,float64", "--dtype", "bfloat16")
    result.stdout.fnmatch_lines(
        [
            "*test_x[[]cpu-float32[]] PASSED*",
            "*test_x[[]cpu-float64[]] PASSED*",
            "*test_x[[]cpu-bfloat16[]] PASSED*",
        ]
    )
    result.assert_outcomes(passed=3)


def test_the_alias_flags_always_exist(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(TEST_FILE)
    result = pytester.runpytest(
        "-v", "--effective-torch-device=cpu", "--effective-torch-dtype=float64"
    )
    result.stdout.fnmatch_lines(["*test_x[[]cpu-float64[]] PASSED*"])


def _present() -> dict[str, list[str]]:
    """What ``all`` and ``auto`` should pick on this machine, read from torch directly."""
    import torch

    cuda = torch.cuda.is_available()
    mps = bool(getattr(torch.backends, "mps", None) and torch.backends.mps.is_available())
    every = ["cpu"] + (["cuda"] if cuda else []) + (["mps"] if mps else [])
    best = ["cuda"] if cuda else ["mps"] if mps else ["cpu"]
    return {"all": every, "auto": best}


@pytest.mark.parametrize("word", ["all", "auto"])
def test_all_and_auto_take_what_this_machine_has(pytester: pytest.Pytester, word: str) -> None:
    pytester.makepyfile(TEST_FILE)
    result = pytester.runpytest(f"--device={word}")
    assert result.ret == 0
    # a GPU is named with its model and capability: "cuda (NVIDIA H200, capability 9.0)"
    names = ", ".join(d + (" (*)" if d == "cuda" else "") for d in _present()[word])
    result.stdout.fnmatch_lines([f"effective-torch: devices: {names} [[]command line[]]"])


def test_precedence_is_ini_then_env_then_cli(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytester.makeini("[pytest]\neffective_torch_dtypes = float16\neffective_torch_seed = 7\n")
    pytester.makepyfile(TEST_FILE)

    from_ini = pytester.runpytest("-v")
    from_ini.stdout.fnmatch_lines(
        ["effective-torch: dtypes: float16 [[]ini option effective_torch_dtypes[]]", "*test_x[[]cpu-float16[]] PASSED*"]
    )
    from_ini.stdout.fnmatch_lines(["effective-torch: seed: --effective-torch-seed=7"])

    monkeypatch.setenv("EFFECTIVE_TORCH_DTYPES", "float64")
    monkeypatch.setenv("EFFECTIVE_TORCH_SEED", "8")
    from_env = pytester.runpytest("-v")
    from_env.stdout.fnmatch_lines(
        [
            "effective-torch: dtypes: float64 [[]environment variable EFFECTIVE_TORCH_DTYPES[]]",
            "effective-torch: seed: --effective-torch-seed=8",
            "*test_x[[]cpu-float64[]] PASSED*",
        ]
    )

    from_cli = pytester.runpytest("-v", "--dtype=bfloat16", "--effective-torch-seed=9")
    from_cli.stdout.fnmatch_lines(
        [
            "effective-torch: dtypes: bfloat16 [[]command line[]]",
            "effective-torch: seed: --effective-torch-seed=9",
            "*test_x[[]cpu-bfloat16[]] PASSED*",
        ]
    )


def test_ini_devices_are_read(pytester: pytest.Pytester) -> None:
    pytester.makeini("[pytest]\neffective_torch_devices = cpu\n")
    pytester.makepyfile(TEST_FILE)
    result = pytester.runpytest()
    result.stdout.fnmatch_lines(["effective-torch: devices: cpu [[]ini option effective_torch_devices[]]"])


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["--dtype=float33"],
            "ERROR: Invalid dtype 'float33' from command line: unknown dtype 'float33'; "
            "valid: float32, float64, float16, bfloat16, *",
        ),
        (
            ["--device=tpu"],
            "ERROR: Invalid device 'tpu' from command line: unknown device 'tpu'; "
            "valid: cpu, cuda, cuda:N, mps, all, auto",
        ),
        (
            ["--device=cuda:99"],
            "ERROR: device 'cuda:99' was requested but *; available: cpu* (from command line)",
        ),
        (
            ["--effective-torch-seed=abc"],
            "ERROR: Invalid seed 'abc' from command line: expected a non-negative integer or 'random'",
        ),
        (
            ["--effective-torch-trials=0"],
            "ERROR: Invalid trials '0' from command line: expected a positive integer",
        ),
        (
            ["--effective-torch-time-budget=-1"],
            "ERROR: Invalid time budget '-1' from command line: expected a positive number",
        ),
        (
            ["--effective-torch-inconclusive=maybe"],
            "ERROR: Invalid inconclusive 'maybe' from command line: expected one of: fail, skip, warn",
        ),
        (
            ["--effective-torch-timer=sundial"],
            "ERROR: Invalid timer 'sundial' from command line: expected one of: host, device",
        ),
        (
            ["--effective-torch-max-speedup-drop=150"],
            "ERROR: Invalid max speedup drop '150' from command line: expected a percentage in [[]0, 100)",
        ),
    ],
)
def test_a_bad_value_is_a_usage_error_naming_value_and_source(
    pytester: pytest.Pytester, args: list[str], message: str
) -> None:
    pytester.makepyfile(TEST_FILE)
    result = pytester.runpytest(*args)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([message])


def test_a_bad_env_value_names_the_variable(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("EFFECTIVE_TORCH_DEVICES", "cpu,gpu")
    pytester.makepyfile(TEST_FILE)
    result = pytester.runpytest()
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        ["ERROR: Invalid device 'cpu,gpu' from environment variable EFFECTIVE_TORCH_DEVICES: unknown device 'gpu'*"]
    )


def test_a_bad_ini_value_names_the_key(pytester: pytest.Pytester) -> None:
    pytester.makeini("[pytest]\neffective_torch_dtypes = float32, floaty\n")
    pytester.makepyfile(TEST_FILE)
    result = pytester.runpytest()
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["ERROR: Invalid dtype * from ini option effective_torch_dtypes: unknown dtype 'floaty'*"])


def test_a_missing_mps_is_a_usage_error(pytester: pytest.Pytester) -> None:
    import torch

    if torch.backends.mps.is_available():
        pytest.skip("this machine has MPS")
    pytester.makepyfile(TEST_FILE)
    result = pytester.runpytest("--device=mps")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["ERROR: device 'mps' was requested but MPS is not available; available: cpu*"])


def test_the_header_names_torch_threads_devices_dtypes_and_seed(pytester: pytest.Pytester) -> None:
    import torch

    pytester.makepyfile(TEST_FILE)
    result = pytester.runpytest("--effective-torch-threads=2")
    result.stdout.fnmatch_lines(
        [
            f"effective-torch: torch {torch.__version__}*, intra-op threads * (speed checks pin 2; speed clock: host time)",
            "effective-torch: devices: cpu [[]default[]]",
            "effective-torch: dtypes: float32 [[]default[]]",
            "effective-torch: seed: --effective-torch-seed=0",
        ]
    )


@pytest.mark.parametrize(
    ("timer", "clock"),
    [("host", "synchronized host time on CUDA"), ("device", "device time (CUDA events) on CUDA")],
)
def test_the_header_says_which_clock_cuda_speed_verdicts_use(timer: str, clock: str) -> None:
    from pytest_effective_torch.config.settings import Settings
    from pytest_effective_torch.plugin.header import clock_text

    assert clock_text(Settings(devices=("cpu", "cuda"), timer=timer)) == f"speed clock: {clock}, host time elsewhere"
    assert clock_text(Settings(devices=("cpu",), timer=timer)) == "speed clock: host time"


def test_a_project_conftest_may_own_device(pytester: pytest.Pytester) -> None:
    pytester.makeconftest(
        """
        def pytest_addoption(parser):
            parser.addoption("--device", default="mine")

        def pytest_report_header(config):
            return f"project device: {config.getoption('--device')}"
        """
    )
    pytester.makepyfile(TEST_FILE)
    result = pytester.runpytest("-v", "--device=theirs", "--effective-torch-dtype=float64")
    assert result.ret == 0
    result.stdout.fnmatch_lines(
        [
            "effective-torch: --device is defined by this project (conftest); use --effective-torch-device to select for the plugin",
        ]
    )
    result.stdout.fnmatch_lines(["project device: theirs"])
    result.stdout.fnmatch_lines(["*test_x[[]cpu-float64[]] PASSED*"])


def test_markers_are_documented(pytester: pytest.Pytester) -> None:
    result = pytester.runpytest("--markers")
    result.stdout.fnmatch_lines(
        [
            "@pytest.mark.devices(*names): run this test only on these devices*",
            "@pytest.mark.dtypes(*dtypes): the dtypes this test supports*",
            "@pytest.mark.tolerance(atol=None, rtol=None): override the automatic tolerance*",
        ]
    )


def test_help_texts_end_with_their_default(pytester: pytest.Pytester) -> None:
    result = pytester.runpytest("--help")
    text = " ".join(result.stdout.str().split())
    for fragment in (
        "--effective-torch-seed=SEED Session seed;",
        "'random' draws one. Default: 0.",
        "Default: cpu.",
        "Default: float32.",
    ):
        assert fragment in text


def test_no_effective_torch_turns_the_plugin_off(pytester: pytest.Pytester) -> None:
    pytester.makepyfile("def test_plain():\n    pass\n")
    result = pytester.runpytest_subprocess("-p", "no:effective_torch", "-p", "no:cacheprovider")
    assert result.ret == 0
    assert "effective-torch" not in result.stdout.str()
    result.assert_outcomes(passed=1)


def test_importing_the_plugin_does_not_import_torch(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        check="""
        import sys
        import pytest_effective_torch.plugin
        import pytest_effective_torch
        assert "torch" not in sys.modules, "torch was imported"
        print("torch not imported")
        """
    )
    result = pytester.run(sys_executable(), "check.py")
    assert result.ret == 0, result.stderr.str()
    result.stdout.fnmatch_lines(["torch not imported"])


def sys_executable() -> str:
    import sys

    return sys.executable


def test_every_public_name_resolves_and_loading_the_plugin_skips_the_engines(
    pytester: pytest.Pytester,
) -> None:
    pytester.makepyfile(
        check="""
        import sys
        import pytest_effective_torch.plugin
        import pytest_effective_torch as pet
        engines = [m for m in sys.modules
                   if m.startswith(("pytest_effective_torch.equivalence", "pytest_effective_torch.speed"))]
        assert not engines, engines
        assert sorted(pet.__all__) == sorted(pet._LAZY)
        for name in pet.__all__:
            getattr(pet, name)
        from pytest_effective_torch import assert_same_as_reference, gradcheck, CheckFailed
        assert issubclass(CheckFailed, AssertionError)
        print("public API ok")
        """
    )
    result = pytester.run(sys_executable(), "check.py")
    assert result.ret == 0, result.stderr.str()
    result.stdout.fnmatch_lines(["public API ok"])


def test_pyproject_lists_and_booleans_are_accepted_without_warnings(pytester: pytest.Pytester) -> None:
    pytester.makepyprojecttoml(
        """
        [tool.pytest.ini_options]
        effective_torch_dtypes = ["float32", "float64"]
        effective_torch_devices = ["cpu"]
        effective_torch_flush_l2 = true
        effective_torch_seed = "11"
        """
    )
    pytester.makepyfile(TEST_FILE)
    result = pytester.runpytest("-v", "-W", "error::pytest.PytestWarning")
    assert result.ret == 0, result.stdout.str()
    result.stdout.fnmatch_lines(
        [
            "effective-torch: dtypes: float32, float64 [[]ini option effective_torch_dtypes[]]",
            "effective-torch: seed: --effective-torch-seed=11",
        ]
    )
    result.assert_outcomes(passed=2)


def test_ini_lists_may_use_commas_or_spaces(pytester: pytest.Pytester) -> None:
    pytester.makeini("[pytest]\neffective_torch_dtypes = float32, float64 bfloat16\n")
    pytester.makepyfile(TEST_FILE)
    result = pytester.runpytest("-v")
    result.assert_outcomes(passed=3)
