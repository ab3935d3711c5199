"""Bad input ends a command with a one-line error and exit code 2; a bug keeps its traceback."""

from __future__ import annotations

import functools
import os
from collections.abc import Callable

import typer
from rich.console import Console
from rich.markup import escape

from fedcl.errors import ConfigError, InputError

_err = Console(stderr=True)


def fail(message: str) -> typer.Exit:
    """Print ``error: message`` on stderr; raise the returned Exit to stop with code 2."""
    _err.print(f"[red]error:[/red] {escape(message)}", highlight=False, soft_wrap=True)  # "[/x]" is text
    return typer.Exit(2)


def bad_input_exits_2(command: Callable) -> Callable:
    """Wrap a command so that an :class:`~fedcl.errors.InputError` (bad data, options, config) exits 2.

    Only that type: any other exception is fedcl's fault, not the user's, and shows its traceback.
    """

    @functools.wraps(command)
    def wrapper(*args, **kwargs):
        try:
            return command(*args, **kwargs)
        except InputError as e:
            raise fail(str(e)) from None

    return wrapper


def command_group(help: str) -> typer.Typer:
    """A ``typer.Typer`` for one group of commands; tracebacks never list local variables (secrets)."""
    return typer.Typer(help=help, no_args_is_help=True, add_completion=False, pretty_exceptions_show_locals=False)


def cannot_write(path, error: OSError) -> ConfigError:
    """The one-line error for an output the user pointed somewhere unwritable (a folder, no permission)."""
    return ConfigError(f"cannot write {path}: {os.strerror(error.errno) if error.errno else error}")
