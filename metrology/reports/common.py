"""What both reports share: observation weeks, picking records and values out of them, percent statistics."""
from __future__ import annotations

import math
from typing import Any, Iterable

import numpy as np

DAY_S = 86400
WEEK_S = 7 * DAY_S
_MONDAY_S = 4 * DAY_S          # 1970-01-01 was a Thursday: the first Monday 00:00 UTC is 4 days later
WEEKS = ("present", "previous")

Record = dict[str, Any]


def week_bounds(now_ts: float, which: str = "present") -> tuple[float, float]:
    """(start, end) of the observation week, Monday 00:00 to Monday 00:00 UTC, that holds ``now_ts``
    ("present") or the one before it ("previous"). A record belongs to the week where ``start < ts <= end``
    (``ts`` is the end of its interval)."""
    if which not in WEEKS:
        raise ValueError(f"week must be one of {', '.join(WEEKS)}, got {which!r}")
    start = (math.floor(now_ts) - _MONDAY_S) // WEEK_S * WEEK_S + _MONDAY_S
    if which == "previous":
        start -= WEEK_S
    return float(start), float(start + WEEK_S)


def usable(record: Record, kind: str, start: float, end: float) -> bool:
    """The record is of ``kind``, inside the week, and neither flagged (a dip, swell or interruption
    occurred: IEC 61000-4-30 4.7 flagging, the values EN 50160 leaves out) nor cut by lost samples."""
    return (record.get("kind") == kind and start < float(record["ts"]) <= end
            and not record.get("flagged") and not record.get("gap"))


def value(record: Record, name: str, shape: tuple[int, ...]) -> np.ndarray:
    """The named value as a float array of ``shape`` (NaN when absent or of another shape)."""
    raw = record.get("values", {}).get(name)
    if raw is None:
        return np.full(shape, np.nan)
    x = np.asarray(raw, dtype=np.float64)
    if x.shape != shape:
        if x.size == 1 and shape == (1,):
            return x.reshape(1)
        return np.full(shape, np.nan)
    return x


def stack(records: Iterable[Record], name: str, shape: tuple[int, ...]) -> np.ndarray:
    """(n, *shape) array of the named value over the records."""
    rows = [value(r, name, shape) for r in records]
    return np.stack(rows) if rows else np.zeros((0, *shape))


def pct_within(x: np.ndarray, lo: float, hi: float) -> list[float | None]:
    """Per column of ``x`` (n, k): % of the finite values within [lo, hi]; None for a column without any."""
    out: list[float | None] = []
    x = np.asarray(x, dtype=np.float64)
    for col in x.reshape(x.shape[0], int(np.prod(x.shape[1:]))).T:
        ok = col[np.isfinite(col)]
        out.append(round(100.0 * float(np.count_nonzero((ok >= lo) & (ok <= hi))) / ok.size, 3) if ok.size else None)
    return out


def worst(per_phase: list[float | None]) -> float | None:
    known = [p for p in per_phase if p is not None]
    return min(known) if known else None


def verdict(measured: float | None, required: float) -> bool | None:
    return None if measured is None else measured >= required


def overall(verdicts: Iterable[bool | None]) -> bool | None:
    """False if anything fails, None (not enough data) if nothing fails but something is unknown, else True."""
    v = list(verdicts)
    if any(x is False for x in v):
        return False
    return None if any(x is None for x in v) else True


def nan_to_none(x: float) -> float | None:
    return None if x is None or not math.isfinite(x) else round(float(x), 4)
