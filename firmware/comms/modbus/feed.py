"""Where the Modbus server's values come from: the measurement snapshot, never the metrology itself.

``SnapshotFeed.poll`` copies the snapshot (a seqlock read: it never waits for the writer) and returns the
values only when the writer has published since the last poll, so a register image is re-encoded once per
publish however many requests arrive. Identity texts and other values that are not measurements are merged in
from ``static``.
"""
from __future__ import annotations

from typing import Any, Callable, Mapping

from firmware.ipc.snapshot import Snapshot


class SnapshotFeed:
    def __init__(self, snapshot: Snapshot, static: Mapping[str, Any] | None = None) -> None:
        self.snapshot = snapshot
        self.static = dict(static or {})
        self._count: int | None = None
        self.updated_ns = 0

    def poll(self) -> Mapping[str, Any] | None:
        data, updated_ns, count = self.snapshot.read_array()
        if count == self._count:
            return None
        self._count = count
        self.updated_ns = updated_ns
        values: dict[str, Any] = dict(self.static)
        for name, (start, size) in self.snapshot.layout.offsets.items():
            if name not in values:
                values[name] = float(data[start]) if size == 1 else data[start:start + size]
        return values


class FunctionFeed:
    """Values from a function, re-read on every poll (for a source that is itself cheap and non-blocking)."""

    def __init__(self, read: Callable[[], Mapping[str, Any]], static: Mapping[str, Any] | None = None) -> None:
        self.read = read
        self.static = dict(static or {})

    def poll(self) -> Mapping[str, Any]:
        return {**self.read(), **self.static}
