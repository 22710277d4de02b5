"""What the metrology kernels' tests share."""
from __future__ import annotations

import numpy as np


def cycle_change_of(fn, x: np.ndarray, matrix: np.ndarray, prev: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
    """cycle_change's changes (m,) and last cycle (S, K) from ``fn`` (the kernel or its reference), ``prev`` (S, K)
    given signal by signal as they take it; the value returned is the largest change."""
    out, last = np.full(x.shape[0], -1.0), np.full((matrix.shape[1], x.shape[1]), -1.0)
    largest = fn(x, matrix, None if prev is None else np.ascontiguousarray(prev.T), out, last)
    assert largest == (out.max() if out.size else 0.0)
    return out, last.T
