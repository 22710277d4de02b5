"""The half-cycle r.m.s. values for the high-speed setpoints: metrology's ``hsrms`` records on the PQ ring.

Metrology sends each batch of Urms(1/2) values (every derived signal, each stamped with the end of its window)
on the PQ ring for the recorder's high-speed bursts (``firmware.ipc.pqrecords``); the io service reads the same
records with a reader of its own (a ring has any number of readers, each with its own position) and skips the
others. Attaches when the ring appears (metrology may start after io); a reader that falls a ring behind loses
the oldest records, counted in ``lost``.
"""
from __future__ import annotations

import time

import numpy as np

from firmware.ipc import pqrecords
from firmware.ipc.ring import Ring, RingReader
from hal.errors import IPCError

ATTACH_RETRY_S = 2.0
POLL_S = 0.1         # how often the io loop looks for new values when high-speed setpoints exist (a batch of
                     # metrology is about that long), so an alarm output follows a short dip within a batch or two


class HalfCycleFeed:
    def __init__(self, name: str) -> None:
        self.name = name
        self.ring: Ring | None = None
        self.reader: RingReader | None = None
        self._retry_at = 0.0
        self.batches = 0

    def _attach(self) -> RingReader | None:
        if self.reader is None and time.monotonic() >= self._retry_at:
            self._retry_at = time.monotonic() + ATTACH_RETRY_S
            try:
                self.ring = Ring.attach(self.name)
            except (IPCError, OSError, ValueError):
                return None
            self.reader = RingReader(self.ring, start="latest")
        return self.reader

    def read(self) -> list[tuple[np.ndarray, np.ndarray]]:
        """The batches that came since the last call: (time of each value [epoch s], urms (n, signals))."""
        reader = self._attach()
        out: list[tuple[np.ndarray, np.ndarray]] = []
        while reader is not None and (data := reader.read(0.0)) is not None:
            try:
                kind, meta, arrays = pqrecords.decode(data)
            except IPCError:
                continue
            if kind != "hsrms":
                continue
            t = (int(meta["t0_ns"]) + arrays["dt_ns"]) / 1e9
            out.append((t, arrays["urms"].reshape(len(t), -1)))
            self.batches += 1
        return out

    @property
    def lost(self) -> int:
        return self.reader.lost if self.reader is not None else 0

    def close(self) -> None:
        if self.ring is not None:
            self.ring.close()
            self.ring = self.reader = None
