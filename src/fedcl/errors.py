"""The errors a user can cause: bad input data or a bad configuration.

The CLI turns these, and only these, into a one-line ``error: ...`` and exit code 2. Any other
exception is a bug in fedcl (or a library under it) and keeps its traceback.
"""

__all__ = ["ConfigError", "InputError", "check_fraction"]


class InputError(ValueError):
    """Input or configuration the user can fix; ``str(err)`` is one line saying what and where."""


class ConfigError(InputError):
    """An option, config key or run directory that cannot work (checked before any training)."""


def check_fraction(name: str, value: float, *, zero_ok: bool = False) -> None:
    """ConfigError unless ``value`` is in (0, 1), or [0, 1) with ``zero_ok`` (NaN fails too)."""
    if not (0 <= value < 1 if zero_ok else 0 < value < 1):
        raise ConfigError(f"{name} must be in {'[0' if zero_ok else '(0'}, 1), got {value!r}")
