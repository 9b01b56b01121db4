"""The lines pytest prints under its session header."""

from __future__ import annotations

from ..config.settings import Settings


def _device_line(name: str) -> str:
    if not name.startswith("cuda"):
        return name
    import torch

    index = 0 if name == "cuda" else int(name.split(":")[1])
    props = torch.cuda.get_device_properties(index)
    return f"{name} ({props.name}, capability {props.major}.{props.minor})"


def clock_text(settings: Settings) -> str:
    """Which clock speed verdicts use: host time, and on CUDA the ``--effective-torch-timer`` kind."""
    if any(d.startswith("cuda") for d in settings.devices):
        cuda = "device time (CUDA events)" if settings.timer == "device" else "synchronized host time"
        return f"speed clock: {cuda} on CUDA, host time elsewhere"
    return "speed clock: host time"


def header_lines(settings: Settings, owned_flags: frozenset[str]) -> list[str]:
    import torch

    cuda = f", CUDA {torch.version.cuda}" if torch.version.cuda else ""
    lines = [
        f"effective-torch: torch {torch.__version__}{cuda}, "
        f"intra-op threads {torch.get_num_threads()} (speed checks pin {settings.threads}; "
        f"{clock_text(settings)})",
        "effective-torch: devices: " + ", ".join(_device_line(d) for d in settings.devices)
        + f" [{settings.sources.get('devices', 'default')}]",
        "effective-torch: dtypes: " + ", ".join(settings.dtypes)
        + f" [{settings.sources.get('dtypes', 'default')}]",
        f"effective-torch: seed: --effective-torch-seed={settings.seed}"
        + (" (drawn at random)" if settings.seed_random else ""),
    ]
    if settings.variants != ("eager",):
        lines.append(
            "effective-torch: variants: " + ", ".join(settings.variants)
            + f" [{settings.sources.get('variants', 'default')}] (compile: torch.compile(candidate), "
            "reference eager, compile time reported apart)"
        )
    if settings.triton_interpret:
        lines.append(
            "effective-torch: Triton kernels run in Triton's interpreter (TRITON_INTERPRET=1, "
            f"{settings.sources.get('triton_interpret', 'default')}): correctness only, speed verdicts skipped"
        )
    for flag, alias in (("--device", "--effective-torch-device"), ("--dtype", "--effective-torch-dtype")):
        if flag not in owned_flags:
            lines.append(
                f"effective-torch: {flag} is defined by this project (conftest); "
                f"use {alias} to select for the plugin"
            )
    return lines
