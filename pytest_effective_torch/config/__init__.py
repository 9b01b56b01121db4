"""Configuration: the session's settings and the devices they name.

Private: the public API is what ``pytest_effective_torch`` exports.
"""
