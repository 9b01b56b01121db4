"""Size sweeps on CUDA: copy bandwidth, datasheet peaks, modes and plots. Skipped without a GPU.

Outcomes are structural (what was measured and reported, verdicts for
twentyfold differences), never wall-clock thresholds.
"""

from __future__ import annotations

import pytest
import torch

from pytest_effective_torch import assert_faster_than_reference
from pytest_effective_torch.speed import throughput

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


def busy(reps):
    def work(x):
        for _ in range(reps):
            x = torch.mm(x, x).tanh_()
        return x

    work.__qualname__ = f"mm_x{reps}"
    return work


def square(make, *, n):
    return (make(n, n),)


def test_the_copy_bandwidth_is_measured_once_per_device_and_is_plausible():
    device = torch.device("cuda")
    first = throughput.copy_bandwidth(device)
    assert first is not None and first > 1e10  # more than 10 GB/s on any GPU
    assert throughput.copy_bandwidth(torch.device("cuda", torch.cuda.current_device())) is first


def test_a_cuda_sweep_reports_rates_against_the_copy_bandwidth_and_the_peak():
    sweep = assert_faster_than_reference(
        busy(1), busy(20), square, device="cuda", sizes={"n": [256, 512]}, min_speedup=2,
        nbytes=lambda n: 2 * n * n * 4, flops=lambda n: 2 * n**3,
    )  # fmt: skip
    assert sweep.passed
    name = torch.cuda.get_device_name()
    for point in sweep.points:
        result = point.result
        assert result.copy_bandwidth == throughput.copy_bandwidth(torch.device("cuda"))
        assert result.peak_flops == throughput.peak_flops(name, "float32")
        assert result.reference_device_time is not None and result.peak_memory[1] is not None
        # the candidate reads and writes n x n once per matmul: no faster than a copy, give or take caches
        assert result.bandwidth("candidate") < 4 * result.copy_bandwidth
        if result.peak_flops is not None:
            assert result.flop_rate("candidate") < result.peak_flops * 1.05


def test_the_backward_mode_on_cuda_times_backward_with_both_clocks():
    sweep = assert_faster_than_reference(
        lambda x: x.sum(1), lambda x: torch.stack([row.sum() for row in x]), square, device="cuda",
        sizes={"n": [64, 256]}, mode=["forward", "backward"], min_speedup=None,
    )  # fmt: skip
    assert [p.result.measured for p in sweep.points] == ["forward", "forward", "backward", "backward"]
    assert all(p.result.candidate_device_time for p in sweep.points)


def test_a_cuda_sweep_plot_has_the_memory_panel(tmp_path):
    pytest.importorskip("matplotlib", reason="the plot extra (matplotlib) is not installed")
    from pytest_effective_torch.speed.plots import figure_pixels, panels

    sweep = assert_faster_than_reference(
        busy(1), busy(20), square, device="cuda", sizes={"n": [256, 512]}, min_speedup=None, nbytes=lambda n: 8 * n * n,
    )  # fmt: skip
    assert panels(sweep) == ["time", "speedup", "bandwidth", "memory"]  # CUDA measures peaks by default
    png, table = sweep.save_plot(tmp_path / "cuda_sweep.png")
    data = png.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    assert figure_pixels(sweep) == (900, 648)
    assert "copy_bytes_per_second" in table.read_text().splitlines()[0]
