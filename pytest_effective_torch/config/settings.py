"""Every setting, its sources, and one precedence rule: ini < env < CLI.

Markers and call arguments sit above these (they are applied where the
check runs). Settings are resolved once per session into a frozen
:class:`Settings` kept in ``config.stash``; hooks and fixtures only read it.
A bad value is a :class:`pytest.UsageError` that names the value, where it
came from and what is accepted.
"""

from __future__ import annotations

import os
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import pytest

from ..compiling import DEFAULT_VARIANT, check_variant
from ..dtypes import canonical_dtype_name
from .devices import (
    Inventory,
    check_device_words,
    needs_inventory,
    probe_inventory,
    resolve_devices,
    split_specs,
)

DEFAULT_SEED = 0

# A few switches are read from stash by other modules; name them once.
SETTINGS_KEY = pytest.StashKey["Settings"]()
OWNED_FLAGS_KEY = pytest.StashKey["frozenset[str]"]()


def _parse_seed(text: str) -> int | None:
    """An integer, or None for ``random`` (drawn once per session)."""
    if text.strip().lower() == "random":
        return None
    try:
        value = int(text)
    except ValueError:
        raise ValueError("expected a non-negative integer or 'random'") from None
    if not 0 <= value < 2**32:
        raise ValueError("expected an integer in [0, 2**32)")
    return value


def _parse_positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise ValueError("expected a positive integer") from None
    if value < 1:
        raise ValueError("expected a positive integer")
    return value


def _parse_positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise ValueError("expected a positive number") from None
    if not value > 0 or value != value or value == float("inf"):
        raise ValueError("expected a positive number")
    return value


def _parse_percent(text: str) -> float:
    value = text.strip().removesuffix("%")
    try:
        number = float(value)
    except ValueError:
        raise ValueError("expected a percentage such as 10 or 10%") from None
    if not 0 <= number < 100:
        raise ValueError("expected a percentage in [0, 100)")
    return number


def _parse_directory(text: str) -> str:
    value = text.strip()
    if not value:
        raise ValueError("expected a directory path")
    return value


def _choice(*choices: str) -> Callable[[str], str]:
    def parse(text: str) -> str:
        value = text.strip().lower()
        if value not in choices:
            raise ValueError(f"expected one of: {', '.join(choices)}")
        return value

    return parse


def _parse_bool(text: str) -> bool:
    value = text.strip().lower()
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off", ""):
        return False
    raise ValueError("expected true or false")


def _parse_devices(text: str) -> tuple[str, ...]:
    specs = split_specs(text.replace(" ", ",").split(","))
    if not specs:
        raise ValueError("expected at least one device")
    check_device_words(specs)
    return tuple(specs)


def _parse_dtypes(text: str) -> tuple[str, ...]:
    return _parse_names(text, "dtype", canonical_dtype_name)


def _parse_variants(text: str) -> tuple[str, ...]:
    def canonical(name: str) -> str:
        try:
            return check_variant(name)
        except ValueError:
            raise ValueError("expected eager and/or compile, e.g. eager,compile") from None

    return _parse_names(text, "variant", canonical)


def _parse_names(text: str, what: str, canonical: Callable[[str], str]) -> tuple[str, ...]:
    """Comma- or space-separated names, canonical and without repeats, in the order given."""
    names = [part for part in text.replace(" ", ",").split(",") if part.strip()]
    if not names:
        raise ValueError(f"expected at least one {what}")
    return tuple(dict.fromkeys(canonical(name) for name in names))


@dataclass(frozen=True)
class OptionSpec:
    """One setting: its flag, ini key, environment variable, default and parser."""

    key: str
    parse: Callable[[str], Any]
    default: str
    help: str
    env: str | None = None
    multiple: bool = False
    flag_only: bool = False  # a store_true flag (and a boolean ini key)
    cli_name: str | None = None  # when the flag is not the key with hyphens

    @property
    def flag(self) -> str:
        return "--effective-torch-" + (self.cli_name or self.key.replace("_", "-"))

    @property
    def ini(self) -> str:
        return "effective_torch_" + self.key

    @property
    def dest(self) -> str:
        return "effective_torch_" + self.key


OPTIONS: tuple[OptionSpec, ...] = (
    OptionSpec(
        "devices",
        _parse_devices,
        "cpu",
        "Devices to run device-bound tests on: cpu, cuda, cuda:N, mps, all "
        "(every available type) or auto (best available); repeat the flag or "
        "give a comma list. Default: cpu.",
        env="EFFECTIVE_TORCH_DEVICES",
        multiple=True,
        cli_name="device",
    ),
    OptionSpec(
        "dtypes",
        _parse_dtypes,
        "float32",
        "Dtypes to run dtype-bound tests with (float32, float64, float16, "
        "bfloat16, ...); repeat the flag or give a comma list. Default: float32.",
        env="EFFECTIVE_TORCH_DTYPES",
        multiple=True,
        cli_name="dtype",
    ),
    OptionSpec(
        "variants",
        _parse_variants,
        DEFAULT_VARIANT,
        "Variants to run the engine fixtures' tests in: eager (the candidate as "
        "written) and compile (torch.compile(candidate), the reference eager); "
        "repeat the flag or give a comma list. Eager test ids stay as they are, "
        "others add a suffix ([cpu-float32-compile]). Default: eager.",
        env="EFFECTIVE_TORCH_VARIANTS",
        multiple=True,
    ),
    OptionSpec(
        "seed",
        _parse_seed,
        str(DEFAULT_SEED),
        "Session seed; each test's seed is derived from it and the test's node "
        f"id. 'random' draws one. Default: {DEFAULT_SEED}.",
        env="EFFECTIVE_TORCH_SEED",
    ),
    OptionSpec(
        "trials",
        _parse_positive_int,
        "3",
        "Random-value trials per equivalence check, before the layout and "
        "magnitude trials. Default: 3.",
    ),
    OptionSpec(
        "threads",
        _parse_positive_int,
        "1",
        "torch intra-op threads while timing on CPU (pinned, then restored). Default: 1.",
    ),
    OptionSpec(
        "time_budget",
        _parse_positive_float,
        "2.0",
        "Seconds a speed verdict may keep measuring before it is inconclusive. Default: 2.0.",
    ),
    OptionSpec(
        "inconclusive",
        _choice("fail", "skip", "warn"),
        "fail",
        "What an undecided speed verdict does: fail, skip or warn. Default: fail.",
    ),
    OptionSpec(
        "timer",
        _choice("host", "device"),
        "device",
        "Which CUDA time the speed verdict uses: device (CUDA events around "
        "back-to-back kernels, what kernel authors mean) or host (synchronized "
        "wall clock, launch overhead included, what eager callers wait for). "
        "Both are reported; the CPU always uses host time. Default: device.",
    ),
    OptionSpec(
        "flush_l2",
        _parse_bool,
        "false",
        "Flush the CUDA L2 cache before every timed call (outside the timed "
        "region) to measure cold-cache speed. Default: off.",
        flag_only=True,
    ),
    OptionSpec(
        "triton_interpret",
        _parse_bool,
        "false",
        "Run Triton kernels on CPU tensors through Triton's interpreter "
        "(sets TRITON_INTERPRET=1 before conftests and test modules import "
        "triton): correctness only, so speed verdicts are skipped; not with "
        "CUDA devices. Default: off.",
        env="EFFECTIVE_TORCH_TRITON_INTERPRET",
        flag_only=True,
    ),
    OptionSpec(
        "max_speedup_drop",
        _parse_percent,
        "",
        "Fail the run when a test's speedup drops by more than this "
        "percentage against the run given by --benchmark-compare. Default: off.",
    ),
    OptionSpec(
        "plots",
        _parse_directory,
        "",
        "Write a PNG plot (and its data as CSV) of every speed sweep "
        "(sizes=) into this directory; needs matplotlib (the 'plot' extra). Default: off.",
    ),
)

OPTIONS_BY_KEY = {spec.key: spec for spec in OPTIONS}


@dataclass(frozen=True)
class Settings:
    """The session's resolved settings. Built once in ``pytest_configure``."""

    devices: tuple[str, ...] = ("cpu",)
    dtypes: tuple[str, ...] = ("float32",)
    variants: tuple[str, ...] = (DEFAULT_VARIANT,)
    seed: int = DEFAULT_SEED
    seed_random: bool = False
    trials: int = 3
    threads: int = 1
    time_budget: float = 2.0
    inconclusive: str = "fail"
    timer: str = "device"
    flush_l2: bool = False
    triton_interpret: bool = False
    max_speedup_drop: float | None = None
    plots: str | None = None
    inventory: Inventory | None = None
    sources: dict[str, str] = field(default_factory=dict, compare=False)

    @property
    def dtypes_explicit(self) -> bool:
        """True when the dtypes were chosen (CLI, env, ini): a dtypes marker then intersects."""
        return self.sources.get("dtypes", "default") != "default"

    @property
    def variants_explicit(self) -> bool:
        """True when the variants were chosen (CLI, env, ini): a variants marker then intersects."""
        return self.sources.get("variants", "default") != "default"


def add_options(parser: pytest.Parser) -> None:
    group = parser.getgroup("effective-torch", "effective-torch: reference checks for PyTorch code")
    for spec in OPTIONS:
        if spec.flag_only:
            group.addoption(spec.flag, action="store_true", default=None, dest=spec.dest, help=spec.help)
        else:
            group.addoption(
                spec.flag,
                action="append" if spec.multiple else "store",
                default=None,
                dest=spec.dest,
                metavar=(spec.cli_name or spec.key).upper(),
                help=spec.help,
            )
        # Lists and booleans get pytest's own ini types, so a pyproject.toml
        # may write them as TOML lists and booleans; scalars stay strings
        # (typed scalar ini options need pytest >= 8.4).
        if spec.multiple:
            parser.addini(spec.ini, help=spec.help, type="args", default=[])
        elif spec.flag_only:
            parser.addini(spec.ini, help=spec.help, type="bool", default=None)
        else:
            parser.addini(spec.ini, help=spec.help, default="")


def add_headline_flag(parser: pytest.Parser, flag: str, key: str) -> bool:
    """Register ``--device``/``--dtype`` unless the project already did.

    Returns False (and registers nothing) when the name is taken, e.g. by a
    conftest that defines its own ``--device``.
    """
    import argparse

    spec = OPTIONS_BY_KEY[key]
    # Look before adding: pytest 9 records the option's name-to-dest mapping
    # before argparse refuses the duplicate, so a failed add would leave the
    # project's ``config.getoption("--device")`` pointing at our dest.
    taken = {name for group in getattr(parser, "_groups", ()) for option in group.options for name in option.names()}
    if flag in taken:
        return False
    group = parser.getgroup("effective-torch")
    try:
        group.addoption(flag, action="append", default=None, dest=spec.dest, metavar=(spec.cli_name or spec.key).upper(), help=spec.help)
    except (ValueError, argparse.ArgumentError):
        return False
    return True


def _raw_values(config: pytest.Config, spec: OptionSpec, *, early: bool = False) -> tuple[str | None, str]:
    """The winning raw text for ``spec`` and where it came from.

    ``early``: before pytest_configure, when only the known arguments are parsed.
    """
    cli = (
        getattr(config.known_args_namespace, spec.dest, None) if early else config.getoption(spec.dest, default=None)
    )
    if cli:
        if spec.flag_only:
            return "true", f"command line {spec.flag}"
        values = cli if isinstance(cli, list) else [cli]
        return ",".join(values), "command line"
    if spec.env:
        env = os.environ.get(spec.env)
        if env is not None and env.strip():
            return env, f"environment variable {spec.env}"
    ini = config.getini(spec.ini)
    if isinstance(ini, bool):
        return ("true" if ini else "false"), f"ini option {spec.ini}"
    if isinstance(ini, list):
        ini = ",".join(ini)
    if ini and str(ini).strip():
        return str(ini), f"ini option {spec.ini}"
    return None, "default"


def _parse(spec: OptionSpec, raw: str, source: str) -> Any:
    try:
        return spec.parse(raw)
    except ValueError as exc:
        label = spec.key.replace("_", " ").rstrip("s") if spec.multiple else spec.key.replace("_", " ")
        raise pytest.UsageError(f"Invalid {label} {raw!r} from {source}: {exc}") from None


def _interpreter_with_cuda(sources: dict[str, str]) -> None:
    raise pytest.UsageError(
        "--effective-torch-triton-interpret runs Triton kernels on CPU tensors through Triton's "
        "interpreter, so it cannot be combined with a CUDA device (triton interpret from "
        f"{sources['triton_interpret']}, devices from {sources['devices']}); "
        "run CUDA tests without it, where the kernels run compiled"
    )


def early_setting(config: pytest.Config, key: str) -> tuple[Any, str]:
    """One setting's value and source before pytest_configure (for what must happen earlier)."""
    spec = OPTIONS_BY_KEY[key]
    raw, source = _raw_values(config, spec, early=True)
    return (spec.parse(spec.default) if raw is None else _parse(spec, raw, source)), source


def resolve_settings(config: pytest.Config, worker_seed: int | None = None) -> Settings:
    values: dict[str, Any] = {}
    sources: dict[str, str] = {}
    for spec in OPTIONS:
        raw, source = _raw_values(config, spec)
        sources[spec.key] = source
        if raw is None:
            values[spec.key] = spec.parse(spec.default) if spec.default else None
        else:
            values[spec.key] = _parse(spec, raw, source)

    seed = values["seed"]
    seed_random = seed is None
    if worker_seed is not None:
        seed = worker_seed
    elif seed is None:
        seed = random.SystemRandom().randrange(2**32)

    specs: Sequence[str] = values["devices"]
    if values["triton_interpret"] and any(spec.startswith("cuda") for spec in specs):
        _interpreter_with_cuda(sources)
    inventory = probe_inventory() if needs_inventory(specs) else None
    try:
        devices = resolve_devices(specs, inventory or Inventory())
    except ValueError as exc:
        raise pytest.UsageError(f"{exc} (from {sources['devices']})") from None
    if values["triton_interpret"] and any(d.startswith("cuda") for d in devices):
        _interpreter_with_cuda(sources)  # all/auto picked a GPU

    return Settings(
        devices=devices,
        dtypes=values["dtypes"],
        variants=values["variants"],
        seed=seed,
        seed_random=seed_random,
        trials=values["trials"],
        threads=values["threads"],
        time_budget=values["time_budget"],
        inconclusive=values["inconclusive"],
        timer=values["timer"],
        flush_l2=bool(values["flush_l2"]),
        triton_interpret=bool(values["triton_interpret"]),
        max_speedup_drop=values["max_speedup_drop"],
        plots=values["plots"],
        inventory=inventory,
        sources=sources,
    )


def get_settings(config: pytest.Config) -> Settings:
    """The session's settings; defaults when the plugin was not configured."""
    return config.stash.get(SETTINGS_KEY, Settings())
