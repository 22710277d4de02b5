"""The web's view of the measurement snapshot: the latest values, grouped as the pages and the API show them.

Values come only from the snapshot the metrology service publishes (a seqlock read that never waits for the
writer). A value not available (NaN) is JSON ``null``. The groups are the point map's areas: readings are the
scalars of the areas on the readings page (measurements, PQ, status, alarms and I/O), energy those of the
energy page (energy registers, demands, peaks, billing and test-mode registers); harmonics and phasors are built from
the per-order arrays and the fundamental angles (V A-N is the reference at 0°, counter-clockwise positive).
One copy is decoded per publish however many clients ask.
"""
from __future__ import annotations

import math
import threading
import time
from dataclasses import dataclass
from typing import Any

import numpy as np

from firmware.ipc.snapshot import Snapshot
from firmware.points import AREAS, Point, load_points
from hal.errors import IPCError

HARMONICS_PREFIX = "harmonics_"
# Phasor channels in drawing order: the angle point of each (V A-N has none: it is the reference).
PHASOR_CHANNELS = ("v_an", "v_bn", "v_cn", "i_a", "i_b", "i_c")
DIAGNOSTIC_POINTS = ("energy_check_wh", "energy_check_varh", "energy_check_vah", "energy_check_s",
                     "energy_paths_differ", "energy_gaps_filled", "energy_gaps_unfilled", "energy_fill_wh",
                     "revenue_locked", "revenue_fault", "time_synced", "status_word", "test_mode")


def harmonic_channels() -> list[str]:
    """Channels with per-order harmonics in the point map (v_an, i_a, ...)."""
    return [p.name[len(HARMONICS_PREFIX):] for p in load_points() if p.name.startswith(HARMONICS_PREFIX)]


def _clean(value: Any) -> Any:
    if isinstance(value, np.ndarray):
        return [None if not math.isfinite(v) else round(float(v), 9) for v in value]
    v = float(value)
    return None if not math.isfinite(v) else v


@dataclass(frozen=True)
class Frame:
    """One decoded publish of the snapshot."""

    values: dict[str, Any]
    updated_ns: int
    count: int

    def meta(self) -> dict[str, Any]:
        age = (time.time_ns() - self.updated_ns) / 1e9 if self.updated_ns else None
        return {"count": self.count, "updated": self.updated_ns / 1e9 if self.updated_ns else None,
                "age_s": None if age is None else round(age, 3)}


class Measurements:
    def __init__(self, shm_name: str) -> None:
        self.shm_name = shm_name
        self._snap: Snapshot | None = None
        self._frame: Frame | None = None
        self._lock = threading.Lock()
        points = load_points()
        self.points = {p.name: p for p in points}
        page = {a.name: a.page for a in AREAS}
        self.reading_names = [p.name for p in points if page[p.area] == "readings" and p.size == 1]
        self.energy_names = [p.name for p in points if page[p.area] == "energy" and p.size == 1]

    def _attach(self) -> Snapshot:
        if self._snap is None:
            try:
                self._snap = Snapshot.attach(self.shm_name)
            except (IPCError, OSError):
                raise IPCError("no measurements: the metrology service is not running (meter status shows why); "
                               "the values appear as soon as it publishes") from None
        return self._snap

    def frame(self) -> Frame:
        """The latest publish, decoded once."""
        with self._lock:
            snap = self._attach()
            data, updated_ns, count = snap.read_array()
            if self._frame is not None and self._frame.count == count and self._frame.updated_ns == updated_ns:
                return self._frame
            values = {name: _clean(data[start] if size == 1 else data[start:start + size])
                      for name, (start, size) in snap.layout.offsets.items()}
            self._frame = Frame(values, updated_ns, count)
            return self._frame

    def close(self) -> None:
        if self._snap is not None:
            self._snap.close()
            self._snap = None

    # ------------------------------------------------------------------ groups

    def pick(self, names: list[str]) -> dict[str, Any]:
        frame = self.frame()
        return {**frame.meta(), "values": {n: frame.values.get(n) for n in names}}

    def readings(self) -> dict[str, Any]:
        return self.pick(self.reading_names)

    def energy(self) -> dict[str, Any]:
        return self.pick(self.energy_names)

    def harmonics(self, channel: str) -> dict[str, Any]:
        frame = self.frame()
        orders = frame.values.get(HARMONICS_PREFIX + channel) or []
        point = self.points[HARMONICS_PREFIX + channel]
        fundamental = orders[1] if len(orders) > 1 else None
        percent = [None if v is None or not fundamental else round(100.0 * v / fundamental, 4) for v in orders]
        return {**frame.meta(), "channel": channel, "unit": point.unit, "fundamental": fundamental,
                "thd": frame.values.get(f"thd_{channel}"), "magnitude": orders, "percent_of_fundamental": percent}

    def phasors(self) -> dict[str, Any]:
        frame = self.frame()
        out = []
        for channel in PHASOR_CHANNELS:
            orders = frame.values.get(HARMONICS_PREFIX + channel) or []
            angle = 0.0 if channel == "v_an" else frame.values.get(f"angle_{channel}")
            out.append({"channel": channel, "unit": "V" if channel.startswith("v") else "A",
                        "magnitude": orders[1] if len(orders) > 1 else None, "angle_deg": angle})
        return {**frame.meta(), "reference": "v_an", "phasors": out}

    def diagnostics(self) -> dict[str, Any]:
        return self.pick([n for n in DIAGNOSTIC_POINTS if n in self.points])

    def point_table(self, labels: str = "ieee") -> list[dict[str, Any]]:
        """Every measured point with its label in the ``labels`` convention (ieee, iec), area and type."""
        return [_describe(p, labels) for p in self.points.values() if p.kind not in ("identity", "command", "setting")]


def _describe(p: Point, labels: str) -> dict[str, Any]:
    return {"name": p.name, "label": p.label(labels), "unit": p.unit, "kind": p.kind, "type": p.type,
            "area": p.area, "description": p.description, "size": p.size}
