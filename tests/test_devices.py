"""The device rules as pure functions, for machines these tests never run on."""

from __future__ import annotations

import pytest

from pytest_effective_torch.config.devices import (
    Inventory,
    capability_skip_reason,
    device_for_worker,
    device_matches,
    resolve_devices,
    split_specs,
    worker_index,
)

CPU_ONLY = Inventory()
ONE_GPU = Inventory(cuda_count=1)
EIGHT_GPUS = Inventory(cuda_count=8)
MAC = Inventory(mps=True)


def test_specs_split_on_commas_and_repeats() -> None:
    assert split_specs(["cpu,CUDA", " mps "]) == ["cpu", "cuda", "mps"]


@pytest.mark.parametrize(
    ("specs", "inventory", "expected"),
    [
        (["cpu"], CPU_ONLY, ("cpu",)),
        (["all"], CPU_ONLY, ("cpu",)),
        (["auto"], CPU_ONLY, ("cpu",)),
        (["all"], ONE_GPU, ("cpu", "cuda")),
        (["auto"], ONE_GPU, ("cuda",)),
        (["auto"], MAC, ("mps",)),
        (["all"], MAC, ("cpu", "mps")),
        (["cuda", "cuda:0"], ONE_GPU, ("cuda",)),
        (["cuda:0", "cuda"], ONE_GPU, ("cuda",)),
        (["cuda", "cuda:0", "cuda:7"], EIGHT_GPUS, ("cuda", "cuda:0", "cuda:7")),
        (["cpu", "all", "cpu"], ONE_GPU, ("cpu", "cuda")),
    ],
)
def test_specs_resolve_against_the_inventory(
    specs: list[str], inventory: Inventory, expected: tuple[str, ...]
) -> None:
    assert resolve_devices(specs, inventory) == expected


@pytest.mark.parametrize(
    ("spec", "inventory", "message"),
    [
        ("cuda", CPU_ONLY, "device 'cuda' was requested but no CUDA device is available; available: cpu"),
        ("cuda:1", ONE_GPU, "device 'cuda:1' was requested but this machine has 1 CUDA device(s); available: cpu, cuda:0"),
        ("mps", ONE_GPU, "device 'mps' was requested but MPS is not available; available: cpu, cuda:0"),
    ],
)
def test_a_missing_explicit_device_is_an_error_naming_what_exists(
    spec: str, inventory: Inventory, message: str
) -> None:
    with pytest.raises(ValueError) as info:
        resolve_devices([spec], inventory)
    assert message in str(info.value)


def test_an_unknown_device_word_lists_the_valid_ones() -> None:
    with pytest.raises(ValueError, match=r"unknown device 'tpu'; valid: cpu, cuda, cuda:N, mps, all, auto"):
        resolve_devices(["tpu"], ONE_GPU)


@pytest.mark.parametrize(
    ("selected", "wanted", "expected"),
    [
        ("cuda", "cuda", True),
        ("cuda:1", "cuda", True),
        ("cuda:1", "cuda:1", True),
        ("cuda:1", "cuda:0", False),
        ("cuda", "cuda:0", True),
        ("cpu", "cuda", False),
        ("mps", "MPS", True),
    ],
)
def test_marker_entries_match_devices(selected: str, wanted: str, expected: bool) -> None:
    assert device_matches(selected, wanted) is expected


@pytest.mark.parametrize(
    ("device", "worker", "count", "expected"),
    [
        ("cuda", None, 8, "cuda:0"),
        ("cuda", 0, 8, "cuda:0"),
        ("cuda", 3, 8, "cuda:3"),
        ("cuda", 11, 8, "cuda:3"),
        ("cuda", 5, 1, "cuda:0"),
        ("cuda:2", 5, 8, "cuda:2"),
        ("cpu", 5, 8, "cpu"),
    ],
)
def test_xdist_worker_k_uses_gpu_k_mod_n(
    device: str, worker: int | None, count: int, expected: str
) -> None:
    assert device_for_worker(device, worker, count) == expected


def test_worker_ids_parse() -> None:
    assert worker_index("gw0") == 0
    assert worker_index("gw12") == 12
    assert worker_index(None) is None
    assert worker_index("") is None


@pytest.mark.parametrize(
    ("device_type", "dtype", "capability", "reason"),
    [
        ("cuda", "bfloat16", (7, 0), "bfloat16 needs CUDA compute capability 8.0 or newer; this device has 7.0"),
        ("cuda", "bfloat16", (7, 5), "bfloat16 needs CUDA compute capability 8.0 or newer; this device has 7.5"),
        ("cuda", "bfloat16", (8, 0), None),
        ("cuda", "bfloat16", (9, 0), None),
        ("cuda", "float16", (6, 0), None),
        ("mps", "float64", None, "float64 is not supported on MPS"),
        ("mps", "float32", None, None),
        ("cpu", "bfloat16", None, None),
        ("cpu", "float64", None, None),
    ],
)
def test_capability_limits_are_decided_by_a_pure_function(
    device_type: str, dtype: str, capability: tuple[int, int] | None, reason: str | None
) -> None:
    assert capability_skip_reason(device_type, dtype, capability) == reason
