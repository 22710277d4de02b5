"""Kernels of the per-sample paths, in C where the build had a compiler, else their numpy references.

``BACKEND`` is ``"c"`` or ``"numpy"``; ``BACKEND_NOTE`` is the one line the metrology service logs
at start-up. Each kernel has the signature of its reference in ``reference.py``.
"""
from __future__ import annotations

from metrology._kernels import reference

try:
    from metrology._kernels import _ckernels  # type: ignore[attr-defined]
except ImportError as exc:  # no compiler at install time, or the extension is stale
    _ckernels = None
    _IMPORT_ERROR = str(exc)
else:
    _IMPORT_ERROR = ""

if _ckernels is not None:
    BACKEND = "c"
    BACKEND_NOTE = "metrology kernels: C (metrology._kernels._ckernels)"
    resample = _ckernels.resample
    cycle_sums = _ckernels.cycle_sums
else:
    BACKEND = "numpy"
    BACKEND_NOTE = ("metrology kernels: numpy reference (C extension not built: "
                    f"{_IMPORT_ERROR}); results are identical, throughput is lower")
    resample = reference.resample
    cycle_sums = reference.cycle_sums

__all__ = ["BACKEND", "BACKEND_NOTE", "resample", "cycle_sums", "reference"]
