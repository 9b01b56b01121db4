"""Shared setup for the plugin's own tests."""

# pytester's in-process runs restore sys.modules after each run. torch's C
# extension cannot be imported a second time in one process, and hypothesis
# (imported by its pytest plugin at the end of every inner run) is slow to
# re-import, so both are imported here, before any inner run, and stay.
# torch._dynamo too: torch.profiler imports it (an inner run that measures
# peak memory on the CPU does), and once pytester has dropped it, importing
# it again registers torch's test operator library twice (a RuntimeError) or
# loads Triton's native module a second time (the process aborts).
import hypothesis  # noqa: F401
import pytest
import torch
import torch._dynamo


@pytest.fixture(autouse=True)
def _inner_runs_are_not_xdist_workers(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    """Under ``pytest -n``, pytester's inner runs would inherit the worker's environment.

    The plugin reads PYTEST_XDIST_WORKER to spread GPUs over workers and to
    turn benchmark storage off; an inner run is a session of its own, so it
    must not see it (tests of worker behaviour set it themselves).
    """
    if "pytester" in request.fixturenames:
        for name in ("PYTEST_XDIST_WORKER", "PYTEST_XDIST_WORKER_COUNT"):
            monkeypatch.delenv(name, raising=False)


@pytest.fixture(scope="session")
def compile_loaded() -> None:
    """torch.compile and torch.library.opcheck, each run once outside pytester.

    Both import and register a great deal on first use (dynamo's backends,
    inductor's lowerings and ops, Triton's native module). Done inside an
    in-process pytester run, that would be dropped with the run's modules and
    redone by the next one, which torch refuses (a backend registered twice)
    or Triton crashes on. A test that compiles in process asks for this
    fixture before ``pytester``, so the snapshot pytester takes includes them.
    """
    import warnings

    from pytest_effective_torch.compiling import unavailable_reason

    @torch.library.custom_op("pet_conftest::warm", mutates_args=())
    def warm(x: torch.Tensor) -> torch.Tensor:
        return x * 2

    warm.register_fake(lambda x: torch.empty_like(x))
    warm.register_autograd(lambda ctx, g: g * 2)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.library.opcheck(warm, (torch.ones(2, requires_grad=True),))
        backend = "inductor" if unavailable_reason("cpu") is None else "aot_eager"
        x = torch.ones(2, requires_grad=True)
        torch.compile(lambda t: (t * t).sum(), backend=backend, dynamic=False)(x).backward()
