"""Clocks, thread pinning and peak memory (CPU here; CUDA paths run in scripts/gpu_check.sh)."""

from __future__ import annotations

import gc
import time

import pytest
import torch

from pytest_effective_torch import synchronized_timer
from pytest_effective_torch.speed.clocks import (
    HostBlockTimer,
    block_timer,
    gc_paused,
    pinned_threads,
    time_once,
)
from pytest_effective_torch.speed.memory import peak_memory


def test_the_synchronized_timer_is_a_clock():
    first = synchronized_timer()
    second = synchronized_timer()
    assert isinstance(first, float) and second >= first


def test_cpu_timing_never_initialises_cuda(pytester: pytest.Pytester):
    # In a fresh process: a session run with --device=cuda has initialised
    # CUDA long before these lines, and would prove nothing.
    pytester.makepyfile(
        check="""
        import torch
        from pytest_effective_torch import assert_faster_than_reference, synchronized_timer
        from pytest_effective_torch.speed.clocks import block_timer, time_once

        synchronized_timer()
        block_timer(torch.device("cpu")).time(lambda: None, 3)
        time_once(lambda: None, torch.device("cpu"))
        assert_faster_than_reference(lambda x: x, lambda x: x + 1, (torch.ones(4),), min_speedup=None, time_budget=0.05)
        assert not torch.cuda.is_initialized(), "CUDA was initialised"
        print("cuda left alone")
        """
    )
    result = pytester.runpython("check.py")
    assert result.ret == 0, result.stderr.str()
    result.stdout.fnmatch_lines(["cuda left alone"])


def test_threads_are_pinned_on_the_cpu_and_restored_even_after_an_error():
    before = torch.get_num_threads()
    with pytest.raises(RuntimeError), pinned_threads(torch.device("cpu"), 1) as pinned:
        assert pinned == 1 and torch.get_num_threads() == 1
        raise RuntimeError("candidate crashed")
    assert torch.get_num_threads() == before


def test_threads_are_left_alone_off_the_cpu_or_when_not_asked():
    before = torch.get_num_threads()
    with pinned_threads(torch.device("meta"), 1) as pinned:
        assert pinned is None and torch.get_num_threads() == before
    with pinned_threads(torch.device("cpu"), None) as pinned:
        assert pinned is None


def test_a_host_block_is_timed_once_around_all_its_calls():
    ticks = iter([10.0, 14.0])
    calls = []
    timer = HostBlockTimer(torch.device("cpu"), clock=lambda: next(ticks))
    timing = timer.time(lambda: calls.append(1), 8)
    assert len(calls) == 8
    assert timing.host == pytest.approx(0.5)  # 4 s over 8 calls
    assert timing.device is None


def test_the_cpu_gets_the_host_timer():
    timer = block_timer(torch.device("cpu"))
    assert isinstance(timer, HostBlockTimer)
    assert time_once(lambda: time.sleep(0.01), torch.device("cpu")) >= 0.01  # a sleep lasts at least that


def test_garbage_collection_is_paused_and_restored():
    assert gc.isenabled()
    with gc_paused():
        assert not gc.isenabled()
    assert gc.isenabled()


def test_cpu_peak_memory_counts_what_the_call_allocates():
    def allocate():
        a = torch.ones(2_000_000)  # 8 MB
        b = torch.ones(2_000_000)  # 8 MB alive at the same time
        return a + b  # and 8 MB more

    peak = peak_memory(allocate, torch.device("cpu"))
    assert peak >= 24_000_000


def test_peak_memory_is_unknown_where_it_cannot_be_measured():
    assert peak_memory(lambda: None, torch.device("meta")) is None


