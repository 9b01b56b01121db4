"""Configuration: the session's settings, the devices and dtypes they name.

Private: the public API is what ``pytest_effective_torch`` exports.
"""
