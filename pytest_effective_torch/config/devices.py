"""Which devices exist, which were asked for, and what each can run.

Everything here that decides is a pure function of its inputs (the device
inventory is passed in as :class:`Inventory`), so the rules are unit-tested
for machines these tests never run on (8 GPUs, compute capability 7.0, MPS).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

DEVICE_WORDS = ("cpu", "cuda", "cuda:N", "mps", "all", "auto")
_CUDA_INDEX = re.compile(r"^cuda:(\d+)$")


@dataclass(frozen=True)
class Inventory:
    """What this machine has: the number of CUDA devices and whether MPS works."""

    cuda_count: int = 0
    mps: bool = False

    def available(self) -> list[str]:
        names = ["cpu"]
        names += [f"cuda:{i}" for i in range(self.cuda_count)]
        if self.mps:
            names.append("mps")
        return names


def probe_inventory() -> Inventory:
    """Ask torch what exists, without initialising CUDA (device_count uses NVML)."""
    import torch

    cuda_count = torch.cuda.device_count() if torch.cuda.is_available() else 0
    mps_backend = getattr(torch.backends, "mps", None)
    mps = bool(mps_backend is not None and mps_backend.is_available())
    return Inventory(cuda_count=cuda_count, mps=mps)


def split_specs(values: Iterable[str]) -> list[str]:
    """Flatten repeated flags and comma lists: ``["cpu,cuda", "mps"]`` -> 3 specs."""
    out = []
    for value in values:
        out += [part.strip().lower() for part in str(value).split(",") if part.strip()]
    return out


def check_device_words(specs: Sequence[str]) -> None:
    """ValueError for a word that is not a device spec at all (no torch needed)."""
    for spec in specs:
        if spec in ("cpu", "cuda", "mps", "all", "auto") or _CUDA_INDEX.match(spec):
            continue
        raise ValueError(
            f"unknown device {spec!r}; valid: {', '.join(DEVICE_WORDS)}"
        )


def needs_inventory(specs: Sequence[str]) -> bool:
    return any(spec != "cpu" for spec in specs)


def resolve_devices(specs: Sequence[str], inventory: Inventory) -> tuple[str, ...]:
    """Expand ``all``/``auto``, check availability, drop duplicates, keep order.

    An explicitly named device that is missing raises ValueError naming it and
    what is available; ``all`` and ``auto`` only ever pick what exists.
    ``cuda`` and ``cuda:0`` collapse to ``cuda`` on a one-GPU machine.
    """
    check_device_words(specs)
    chosen: list[str] = []
    for spec in specs:
        if spec == "all":
            expanded = ["cpu"]
            if inventory.cuda_count:
                expanded.append("cuda")
            if inventory.mps:
                expanded.append("mps")
        elif spec == "auto":
            if inventory.cuda_count:
                expanded = ["cuda"]
            elif inventory.mps:
                expanded = ["mps"]
            else:
                expanded = ["cpu"]
        else:
            missing = None
            match = _CUDA_INDEX.match(spec)
            if spec == "cuda" and not inventory.cuda_count:
                missing = "no CUDA device is available"
            elif match and int(match.group(1)) >= inventory.cuda_count:
                missing = (
                    f"this machine has {inventory.cuda_count} CUDA device(s)"
                    if inventory.cuda_count
                    else "no CUDA device is available"
                )
            elif spec == "mps" and not inventory.mps:
                missing = "MPS is not available"
            if missing:
                raise ValueError(
                    f"device {spec!r} was requested but {missing}; "
                    f"available: {', '.join(inventory.available())} "
                    "(use --device=all or --device=auto to take whatever exists)"
                )
            expanded = [spec]
        for name in expanded:
            if inventory.cuda_count == 1 and name == "cuda:0":
                name = "cuda"
            if name not in chosen:
                chosen.append(name)
    return tuple(chosen)


def device_matches(selected: str, wanted: str) -> bool:
    """Does a selected device satisfy a ``devices(...)`` marker entry?

    ``cuda`` in a marker accepts any CUDA device; ``cuda:1`` only that one.
    """
    wanted = wanted.lower()
    if wanted == selected:
        return True
    if wanted == "cuda":
        return selected == "cuda" or selected.startswith("cuda:")
    if selected == "cuda" and wanted == "cuda:0":
        return True
    return False


def worker_index(worker_id: str | None) -> int | None:
    """``"gw3"`` -> 3; None outside pytest-xdist."""
    if not worker_id:
        return None
    match = re.search(r"(\d+)$", worker_id)
    return int(match.group(1)) if match else None


def device_for_worker(device: str, worker: int | None, cuda_count: int) -> str:
    """The concrete device a test runs on: xdist worker k takes ``cuda:(k mod N)``.

    Only the bare ``cuda`` moves; an explicit ``cuda:N`` is kept, and outside
    xdist ``cuda`` means ``cuda:0``.
    """
    if device != "cuda":
        return device
    if worker is None or cuda_count <= 0:
        return "cuda:0"
    return f"cuda:{worker % cuda_count}"


def capability_skip_reason(
    device_type: str, dtype_name: str, capability: tuple[int, int] | None = None
) -> str | None:
    """Why ``dtype_name`` cannot run on ``device_type``, or None when it can.

    ``capability`` is the CUDA compute capability ``(major, minor)``.
    """
    if device_type == "cuda" and dtype_name == "bfloat16" and capability is not None:
        if capability < (8, 0):
            return (
                f"bfloat16 needs CUDA compute capability 8.0 or newer; "
                f"this device has {capability[0]}.{capability[1]}"
            )
    if device_type == "mps" and dtype_name in ("float64", "complex128"):
        return f"{dtype_name} is not supported on MPS"
    return None
