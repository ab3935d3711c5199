"""The errors a user can cause: bad input data or a bad configuration.

The CLI turns these, and only these, into a one-line ``error: ...`` and exit code 2. Any other
exception is a bug in fedcl (or a library under it) and keeps its traceback.
"""

__all__ = ["ConfigError", "InputError"]


class InputError(ValueError):
    """Input or configuration the user can fix; ``str(err)`` is one line saying what and where."""


class ConfigError(InputError):
    """An option, config key or run directory that cannot work (checked before any training)."""
