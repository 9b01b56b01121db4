"""Shared setup for the plugin's own tests."""

# pytester's in-process runs restore sys.modules after each run. torch's C
# extension cannot be imported a second time in one process, and hypothesis
# (imported by its pytest plugin at the end of every inner run) is slow to
# re-import, so both are imported here, before any inner run, and stay.
import hypothesis  # noqa: F401
import torch  # noqa: F401
