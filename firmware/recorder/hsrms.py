"""High-speed RMS bursts: the half-cycle RMS values (Urms(1/2), and the currents' one-cycle RMS refreshed each
half cycle) from ``pre_s`` before an event's start to ``post_s`` after it, as the ION7400's Sg/Sw HS Log keeps
them (pre-trigger 0-0.5 s, post-trigger 0-1 s, SPEC §4).

Metrology sends every batch of half-cycle values on the events ring; the recorder keeps the last ``pre_s`` plus a
margin of them here and completes a burst once values past ``start + post_s`` have come.
"""
from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from metrology.systems import I_PH, SIGNALS, V_LL, V_LN

KEPT = tuple(range(V_LN.start, V_LN.stop)) + tuple(range(V_LL.start, V_LL.stop)) + tuple(range(I_PH.start,
                                                                                                 I_PH.stop))
KEPT_NAMES = tuple(SIGNALS[k] for k in KEPT)
MARGIN_S = 4.0          # events reach the recorder a batch or two after their values, an RVC when it ends


@dataclass
class Burst:
    kind: str
    start_ns: int
    lo_ns: int
    hi_ns: int
    t_ns: list[int] = field(default_factory=list)
    rows: list[list[float]] = field(default_factory=list)


class HsRms:
    def __init__(self, pre_s: float, post_s: float) -> None:
        self.pre_ns, self.post_ns = int(pre_s * 1e9), int(post_s * 1e9)
        self.keep_ns = self.pre_ns + int(MARGIN_S * 1e9)
        self.values: deque[tuple[int, np.ndarray]] = deque()     # (end ns, row of KEPT signals)
        self.open: list[Burst] = []

    def add(self, t0_ns: int, dt_ns: np.ndarray, urms: np.ndarray) -> list[Burst]:
        """A batch of half-cycle values; returns the bursts it completes."""
        rows = urms[:, KEPT]
        times = (t0_ns + np.rint(dt_ns)).astype(np.int64).tolist()
        for t, row in zip(times, rows):
            self.values.append((t, row))
            for b in self.open:
                if b.lo_ns <= t <= b.hi_ns:
                    b.t_ns.append(t)
                    b.rows.append(row.tolist())
        newest = times[-1] if times else 0
        while self.values and self.values[0][0] < newest - self.keep_ns:
            self.values.popleft()
        done = [b for b in self.open if newest >= b.hi_ns]
        self.open = [b for b in self.open if newest < b.hi_ns]
        return done

    def trigger(self, kind: str, start_ns: int) -> None:
        b = Burst(kind, start_ns, start_ns - self.pre_ns, start_ns + self.post_ns)
        for t, row in self.values:
            if b.lo_ns <= t <= b.hi_ns:
                b.t_ns.append(t)
                b.rows.append(row.tolist())
        self.open.append(b)


def burst_detail(b: Burst) -> dict[str, Any]:
    """The stored form: times relative to the event's start (s) and one list per signal (V, A)."""
    cols: list[Any] = list(zip(*b.rows)) if b.rows else [() for _ in KEPT_NAMES]
    return {"kind": b.kind, "start_ns": b.start_ns, "t": [(t - b.start_ns) / 1e9 for t in b.t_ns],
            **{name: [round(v, 4) for v in col] for name, col in zip(KEPT_NAMES, cols)}}
