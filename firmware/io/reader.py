"""The io snapshot as other services read it: digital-input levels, counts and activations, the alarm summary.

Attaches when the snapshot appears (the io service may start after the reader, or not run at all) and reads
nothing while it is absent; a reader never blocks the io service (``firmware.ipc.snapshot``).
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

import numpy as np

from firmware.ipc.snapshot import Snapshot
from hal.errors import IPCError

ATTACH_RETRY_S = 2.0
STALE_S = 10.0         # an io snapshot not updated for this long (io service stopped) gives no levels


@dataclass
class IoView:
    """One coherent reading of the io snapshot (input numbers from 1)."""
    levels: dict[int, bool] = field(default_factory=dict)
    counts: dict[int, int] = field(default_factory=dict)
    activations: dict[int, int] = field(default_factory=dict)
    values: dict[str, float | np.ndarray] = field(default_factory=dict)
    stale: bool = False

    def flag(self, name: str) -> bool:
        v = self.values.get(name, math.nan)
        return isinstance(v, float) and math.isfinite(v) and v != 0.0


class IoReader:
    def __init__(self, name: str, stale_s: float = STALE_S) -> None:
        self.name = name
        self.stale_s = stale_s
        self.snapshot: Snapshot | None = None
        self._retry_at = 0.0

    def _attach(self) -> Snapshot | None:
        if self.snapshot is None:
            now = time.monotonic()
            if now < self._retry_at:
                return None
            self._retry_at = now + ATTACH_RETRY_S
            try:
                self.snapshot = Snapshot.attach(self.name)
            except (IPCError, OSError, ValueError):
                return None
        return self.snapshot

    def read(self) -> IoView | None:
        """The latest io snapshot, or None while there is none yet."""
        snap = self._attach()
        if snap is None:
            return None
        try:
            data, updated_ns, count = snap.read_array()
        except IPCError:
            return None
        if count == 0:
            return None
        view = IoView(stale=time.time() - updated_ns / 1e9 > self.stale_s)
        values = {name: snap.field(data, name) for name in snap.layout.offsets}
        view.values = values
        for key, target in (("di_count", view.counts), ("di_activations", view.activations)):
            arr = np.asarray(values.get(key, ()))
            for i, v in enumerate(arr):
                if math.isfinite(v):
                    target[i + 1] = int(v)
        if not view.stale:
            for i, v in enumerate(np.asarray(values.get("di_state", ()))):
                if math.isfinite(v):
                    view.levels[i + 1] = bool(v)
        return view

    def close(self) -> None:
        if self.snapshot is not None:
            self.snapshot.close()
            self.snapshot = None
