"""Packages load their public names on first use; every name in ``__all__`` still resolves.

(About every lazy package of fedcl, not Flower alone: kept here while the ClientApp's start-up is the
reason for it.)
"""

from __future__ import annotations

import importlib
import subprocess
import sys

import pytest

LAZY = ["fedcl.baselines", "fedcl.baselines.supervised", "fedcl.cli", "fedcl.data", "fedcl.eval", "fedcl.federated",
        "fedcl.federated.flower", "fedcl.model", "fedcl.traffic"]


@pytest.mark.parametrize("name", LAZY)
def test_every_public_name_resolves_and_nothing_else_is_exported(name):
    package = importlib.import_module(name)
    exported = {n for names in package._EXPORTS.values() for n in names}
    assert set(package.__all__) == exported
    assert all(getattr(package, n) is not None for n in package.__all__)
    assert set(package.__all__) <= set(dir(package))
    with pytest.raises(AttributeError):
        package.no_such_name  # noqa: B018


@pytest.mark.parametrize("name", LAZY)
def test_importing_a_package_imports_none_of_its_modules(name):
    script = f"import sys, {name}; print(' '.join(m for m in sys.modules if m.startswith('{name}.')))"
    loaded = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True,
                            timeout=120).stdout.split()
    assert loaded == []


def test_a_submodule_is_still_an_attribute_of_its_package():
    import fedcl.federated

    assert fedcl.federated.runner.run_federation is fedcl.federated.run_federation
