"""Shared setup for the plugin's own tests."""

# pytester's in-process runs restore sys.modules after each run; torch's C
# extension cannot be imported a second time in one process, so it is
# imported here, before any inner run, and stays loaded.
import torch  # noqa: F401
