"""The CUDA timing paths. Skipped without a GPU; scripts/gpu_check.sh runs them on one.

Outcomes are structural (which timer, what was reported, which verdict for
a twentyfold difference), never wall-clock thresholds.
"""

from __future__ import annotations

import pytest
import torch

from pytest_effective_torch import CheckFailed, assert_faster_than_reference, synchronized_timer
from pytest_effective_torch.speed.clocks import CudaBlockTimer, block_timer

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


def busy(reps):
    def work(x):
        for _ in range(reps):
            x = torch.mm(x, x).tanh_()
        return x

    work.__qualname__ = f"mm_x{reps}"
    return work


def inputs(make):
    return (make(512, 512),)


@pytest.mark.parametrize("timer", ["host", "device"])
def test_a_twentyfold_faster_kernel_passes_on_either_timer_and_both_are_reported(timer):
    result = assert_faster_than_reference(
        busy(1), busy(20), inputs, device="cuda", min_speedup=2, timer=timer
    )
    assert result.passed and result.timer == timer
    assert result.device.startswith("cuda") and result.device_name
    assert result.reference_host_time > 0 and result.reference_device_time > 0
    assert result.candidate_host_time > 0 and result.candidate_device_time > 0
    assert result.threads is None  # nothing pinned off the CPU
    assert result.peak_memory[0] is not None and result.peak_memory[1] is not None


def test_a_twentyfold_slower_kernel_fails_and_says_which_time_it_used():
    with pytest.raises(CheckFailed) as info:
        assert_faster_than_reference(busy(20), busy(1), inputs, device="cuda", min_speedup=1.5)
    message = str(info.value)
    assert "timer: device time (CUDA events, queue kept busy)" in message  # the default on CUDA
    assert "host time: reference" in message and "device time (CUDA events): reference" in message


def test_flushing_l2_times_one_call_per_block():
    result = assert_faster_than_reference(
        busy(1), busy(20), inputs, device="cuda", min_speedup=2, flush_l2=True
    )
    assert result.calls_per_round == (1, 1)
    assert "L2 flushed before each call" in result.timer_description


def test_the_cuda_block_timer_reports_host_and_device_time():
    device = torch.device("cuda")
    timer = block_timer(device)
    assert isinstance(timer, CudaBlockTimer)
    x = torch.randn(1024, 1024, device=device)
    timing = timer.time(lambda: torch.mm(x, x), 10)
    assert timing.host > 0 and timing.device is not None and timing.device > 0


def test_cuda_peak_memory_decides_max_memory_ratio():
    def wasteful(x):
        scratch = torch.ones(64 * 2**20, device=x.device)  # 256 MiB nobody needs
        return x + scratch[:1]

    def lean(x):
        return x + 1

    with pytest.raises(CheckFailed, match="candidate wasteful needs too much memory"):
        assert_faster_than_reference(
            wasteful, lean, inputs, device="cuda", min_speedup=None, max_memory_ratio=2.0
        )


def test_the_synchronized_timer_waits_for_queued_work():
    torch.cuda.synchronize()
    stream = torch.cuda.current_stream()
    torch.cuda._sleep(200_000_000)  # keeps the GPU busy for far longer than the next line takes
    assert not stream.query(), "the queue should still be busy before the timer is read"
    synchronized_timer()
    # nothing is left in the queue once the timer has returned
    assert stream.query()


def test_cuda_peak_memory_is_reset_for_each_side():
    # The reference's 256 MiB peak must not leak into the candidate's.
    def wasteful(x):
        scratch = torch.ones(64 * 2**20, device=x.device)
        return x + scratch[:1]

    def lean(x):
        return x + 1

    result = assert_faster_than_reference(
        lean, wasteful, inputs, device="cuda", min_speedup=None, measure_memory=True
    )
    reference_peak, candidate_peak = result.peak_memory
    assert reference_peak >= 256 * 2**20
    assert candidate_peak < 16 * 2**20


def test_forward_and_backward_are_timed_on_cuda():
    result = assert_faster_than_reference(
        busy(1), busy(20), inputs, device="cuda", min_speedup=2, backward=True
    )
    assert result.passed and result.measured == "forward+backward"
    assert result.reference_device_time > 0 and result.candidate_device_time > 0


def test_device_time_is_recorded_on_the_callers_stream():
    # Work launched on a side stream is bracketed by events on that stream.
    stream = torch.cuda.Stream()
    with torch.cuda.stream(stream):
        result = assert_faster_than_reference(
            busy(1), busy(20), inputs, device="cuda", min_speedup=2, timer="device"
        )
    assert result.passed and result.timer == "device"
