"""The ``fedcl`` command: one module per command group, joined in :mod:`fedcl.cli.main`."""

from fedcl import _lazy_exports

# Loaded on first use (fedcl._lazy_exports): `import fedcl.cli.flower` does not build every command group.
_EXPORTS = {
    ".main": ["app"],
}
__getattr__, __dir__ = _lazy_exports(__name__, _EXPORTS)

__all__ = ["app"]
