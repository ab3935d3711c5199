"""numba, when it is installed: the packet loops of the decoder and the extractor compile with it.

The edge install (requirements-edge.txt) leaves numba out: numba and llvmlite would add ~210 MB unpacked
to its ~460 MB, for a gateway whose capture brings far fewer packets than the numpy path's ~100 k/s. There
:func:`have_numba` is False and callers take their numpy/``struct`` path, which reads the same packets and
gives the same rows to rounding (tests compare the two). numba is imported on first use, not with
``fedcl.traffic``: it takes ~0.4 s, which every ``fedcl`` command would otherwise pay.
"""

from __future__ import annotations

import functools

__all__ = ["have_numba", "jit"]


@functools.cache
def have_numba() -> bool:
    """Whether numba can be imported (it is, if so)."""
    try:
        import numba  # noqa: F401
    except ImportError:  # the edge install
        return False
    return True


def jit(fn):
    """``fn`` compiled by numba, cached on disk (a fresh process loads the machine code instead of compiling:
    ~0.3 s against ~4 s) and releasing the GIL (FeatureWriter formats earlier rows in another thread)."""
    import numba

    return numba.njit(cache=True, nogil=True)(fn)
