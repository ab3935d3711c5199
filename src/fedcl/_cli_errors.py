"""Bad input ends a command with a one-line error and exit code 2, never a traceback."""

from __future__ import annotations

import functools
from collections.abc import Callable

import typer
from rich.console import Console

from fedcl.data import DataError

_err = Console(stderr=True)


def fail(message: str) -> typer.Exit:
    """Print ``error: message`` on stderr; raise the returned Exit to stop with code 2."""
    _err.print(f"[red]error:[/red] {message}", highlight=False, soft_wrap=True)
    return typer.Exit(2)


def bad_input_exits_2(command: Callable) -> Callable:
    """Wrap a command so that DataError / ValueError (bad data, options, config) exit with code 2."""

    @functools.wraps(command)
    def wrapper(*args, **kwargs):
        try:
            return command(*args, **kwargs)
        except (DataError, ValueError) as e:
            raise fail(str(e)) from None

    return wrapper
