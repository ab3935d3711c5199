"""The ``fedcl`` command: one module per command group, joined in :mod:`fedcl.cli.main`."""

from fedcl.cli.main import app

__all__ = ["app"]
