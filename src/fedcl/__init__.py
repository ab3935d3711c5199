"""fedcl: federated contrastive anomaly detection on IoT network traffic."""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable, Mapping, Sequence

__version__ = "0.1.0"


def _lazy_exports(package: str, exports: Mapping[str, Sequence[str]]) -> tuple[Callable, Callable]:
    """``__getattr__`` and ``__dir__`` for a package whose public names load on first use (PEP 562).

    ``exports`` maps each module (relative to ``package``) to the public names it defines. Importing
    the package then costs nothing, and ``from fedcl.model import InfoNCELoss`` loads ``_infonce``
    and what it needs, not the detector and scikit-learn: a Flower ClientApp process pays only for
    what it uses. Submodules stay reachable as attributes (``fedcl.federated.runner``).
    """
    where = {name: module for module, names in exports.items() for name in names}

    def __getattr__(name: str) -> object:
        if name.startswith("__"):
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        if name in where:
            value = getattr(importlib.import_module(where[name], package), name)
            setattr(sys.modules[package], name, value)  # cached: not asked again
            return value
        try:
            return importlib.import_module(f"{package}.{name}")
        except ModuleNotFoundError as err:
            if err.name != f"{package}.{name}":
                raise  # the submodule exists but something it imports does not
            raise AttributeError(f"module {package!r} has no attribute {name!r}") from None

    def __dir__() -> list[str]:
        return sorted(set(vars(sys.modules[package])) | set(where))

    return __getattr__, __dir__
