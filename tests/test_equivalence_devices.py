"""The engine on the test's device and dtype, through the fixtures.

Plain ``pytest`` runs these on cpu/float32; ``scripts/gpu_check.sh`` runs them
with ``--device=cuda --dtype=float32,float64,bfloat16``.
"""

from __future__ import annotations

import json

import pytest
import torch
import torch.nn.functional as F
from _broken import BadSquare

from pytest_effective_torch import CheckFailed


def stable_softmax(x):
    e = torch.exp(x - x.amax(-1, keepdim=True))
    return e / e.sum(-1, keepdim=True)


def unstable_softmax(x):
    e = torch.exp(x)
    return e / e.sum(-1, keepdim=True)


def torch_softmax(x):
    return torch.softmax(x, -1)


def rows(make):
    return (make(8, 12),)


def test_a_stable_rewrite_passes_and_the_unstable_one_fails_on_this_device(assert_same_as_reference, device):
    report = assert_same_as_reference(stable_softmax, torch_softmax, rows)
    assert report.kinds[-3:] == ["large", "small", "offset"]
    with pytest.raises(CheckFailed) as info:
        assert_same_as_reference(unstable_softmax, torch_softmax, rows)
    msg = str(info.value)
    assert "candidate is non-finite where the reference is finite" in msg
    assert f", {device}:" in msg or f", {device.type}" in msg


def test_wrong_gradients_layouts_and_mutations_are_caught_on_this_device(assert_same_as_reference):
    with pytest.raises(CheckFailed, match="grad of input 0"):
        assert_same_as_reference(BadSquare.apply, lambda x: x * x, rows)

    def contiguous_only(x):
        return (x.as_strided((x.numel(),), (1,)) * 2).view(x.shape)

    with pytest.raises(CheckFailed, match=r"\(non-contiguous layout\)"):
        assert_same_as_reference(contiguous_only, lambda x: x * 2, rows)
    with pytest.raises(CheckFailed, match="candidate modified input 0 in place"):
        assert_same_as_reference(lambda x: x.mul_(2), lambda x: x * 2, rows)


def test_dropout_sees_the_same_rng_state_on_both_sides(assert_same_as_reference):
    # Both sides call dropout on the same layout: on CUDA a non-contiguous
    # input takes another kernel, which draws its mask differently.
    assert_same_as_reference(
        lambda x: F.dropout(x, 0.3, training=True) * 1.0, lambda x: F.dropout(x, 0.3, training=True), rows
    )


def test_modules_are_copied_to_the_device_and_dtype(assert_same_as_reference, device, dtype):
    torch.manual_seed(0)
    linear = torch.nn.Linear(12, 5)

    class ByHand(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.weight = torch.nn.Parameter(linear.weight.detach().clone())
            self.bias = torch.nn.Parameter(linear.bias.detach().clone())

        def forward(self, x):
            return (x[:, None, :] * self.weight).sum(-1) + self.bias

    report = assert_same_as_reference(ByHand(), linear, rows)
    assert report.parameter_gradients_compared
    assert linear.weight.device.type == "cpu" and linear.weight.dtype == torch.float32


def test_gradcheck_runs_in_float64_on_this_device(gradcheck):
    report = gradcheck(torch.tanh, lambda make: (make(2, 3),))
    assert report.dtype == "float64"


def test_the_passing_path_copies_no_tensor_to_the_host(assert_same_as_reference, device, tmp_path):
    # Not @pytest.mark.devices("cuda"): on a CPU-only torch that marker's skip
    # item currently trips the capability probe at collection.
    if device.type != "cuda":
        pytest.skip("CUDA only: counts device-to-host copies")
    from torch.profiler import ProfilerActivity, profile

    def inputs(make):
        return (make(256, 1024),)

    def candidate(x):  # exact to the working dtype's rounding in every dtype: computes in float32 or wider
        return stable_softmax(x.to(torch.promote_types(x.dtype, torch.float32))).to(x.dtype)

    assert_same_as_reference(candidate, torch_softmax, inputs)  # warm-up
    with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as prof:
        assert_same_as_reference(candidate, torch_softmax, inputs)
    trace = tmp_path / "trace.json"
    prof.export_chrome_trace(str(trace))
    events = json.loads(trace.read_text())["traceEvents"]
    dtoh = [e for e in events if "DtoH" in str(e.get("name", "")) or "Device -> Pageable" in str(e.get("name", ""))]
    sizes = [int(e.get("args", {}).get("bytes", 0)) for e in dtoh]
    # scalars and a handful of norms per comparison; the tensors are 1 MiB
    assert sizes and max(sizes) <= 1024, sizes


def test_make_draws_the_same_values_on_this_device_as_on_the_cpu(device, dtype):
    from pytest_effective_torch import Maker

    here, cpu = Maker(device, dtype, seed=5), Maker("cpu", dtype, seed=5)
    for shape in ((3, 4), (1000,), ()):
        assert torch.equal(here(*shape).cpu(), cpu(*shape))
    index = here(6, dtype=torch.int64, high=4)
    assert index.device.type == torch.device(device).type and torch.equal(index.cpu(), cpu(6, dtype=torch.int64, high=4))


def test_a_check_leaves_this_devices_random_generator_as_it_was(assert_same_as_reference, device):
    def noisy(x):
        return x + 0.0 * torch.rand_like(x)  # draws from the device's generator

    state = torch.cuda.get_rng_state(device) if device.type == "cuda" else torch.get_rng_state()
    assert_same_as_reference(noisy, lambda x: x.clone(), rows)
    after = torch.cuda.get_rng_state(device) if device.type == "cuda" else torch.get_rng_state()
    assert torch.equal(state, after)


def test_make_draws_what_make_tensor_draws_from_the_call_seed_and_leaves_the_global_generator(dtype):
    from torch.testing import make_tensor

    from pytest_effective_torch import Maker
    from pytest_effective_torch.inputs import derive_seed

    make = Maker("cpu", dtype, seed=11)
    state = torch.get_rng_state()
    made = [make(4, 5), make(7), make(3, low=-1, high=2), make(2, 2, exclude_zero=True)]
    assert torch.equal(torch.get_rng_state(), state)
    kwargs = [{}, {}, {"low": -1, "high": 2}, {"exclude_zero": True}]
    for call, (tensor, kw) in enumerate(zip(made, kwargs, strict=True)):
        torch.manual_seed(derive_seed(11, "make", call))
        assert torch.equal(tensor, make_tensor(tuple(tensor.shape), dtype=dtype, device="cpu", **kw)), call


def test_make_draws_float8_as_make_tensor_does():
    from torch.testing import make_tensor

    from pytest_effective_torch import Maker
    from pytest_effective_torch.inputs import derive_seed

    x = Maker("cpu", torch.float8_e4m3fn, seed=2)(3, 5)
    torch.manual_seed(derive_seed(2, "make", 0))
    assert x.dtype == torch.float8_e4m3fn
    assert torch.equal(x.float(), make_tensor((3, 5), dtype=torch.float8_e4m3fn, device="cpu").float())
