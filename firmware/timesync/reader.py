"""``time_synced`` as the time service publishes it, for the service that writes the measurement snapshot."""
from __future__ import annotations

import math
import time

from firmware.ipc.snapshot import Snapshot
from hal.errors import IPCError

ATTACH_RETRY_S = 5.0
STALE_S = 60.0      # a time snapshot not updated for this long (time service stopped) reads as not synced


class TimeSynced:
    """Attaches to the ``time`` snapshot when it appears; NaN while there is none (time service disabled)."""

    def __init__(self, name: str, stale_s: float = STALE_S) -> None:
        self.name = name
        self.stale_s = stale_s
        self.snapshot: Snapshot | None = None
        self._retry_at = 0.0

    def value(self, field: str = "time_synced") -> float:
        """``field`` of the time snapshot (time_synced, time_quality ...); a stale snapshot reads 0."""
        if self.snapshot is None:
            now = time.monotonic()
            if now < self._retry_at:
                return math.nan
            self._retry_at = now + ATTACH_RETRY_S
            try:
                self.snapshot = Snapshot.attach(self.name)
            except (IPCError, OSError, ValueError):
                return math.nan
        try:
            data, updated_ns, count = self.snapshot.read_array()
        except IPCError:
            return math.nan
        if count == 0:
            return math.nan
        if time.time() - updated_ns / 1e9 > self.stale_s:
            return 0.0
        return float(self.snapshot.field(data, field))

    def close(self) -> None:
        if self.snapshot is not None:
            self.snapshot.close()
            self.snapshot = None
