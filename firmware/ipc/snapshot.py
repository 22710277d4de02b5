"""Seqlock'd shared-memory snapshot of the latest values, one writer, any number of readers.

The record is an array of float64 whose layout (point name -> offset, size) is stored as JSON in
the mapping itself, so a reader needs only the name. The writer makes the sequence word odd,
writes, and makes it even again (release); a reader copies the data between two reads of an
even, unchanged sequence word (acquire fence before the second read) and otherwise retries.
The writer never waits for readers, and a reader never returns a torn record.

Values not yet published read as NaN. ``updated_ns`` is the writer's CLOCK_REALTIME at publish.
"""
from __future__ import annotations

import contextlib
import json
import mmap
import struct
import time
from typing import Mapping, Sequence

import numpy as np

from firmware.ipc import atomics as at
from firmware.ipc import shm
from hal.errors import IPCError

MAGIC = 0x50414E53_4D4F454D  # "MEOSNAP" family
FORMAT_VERSION = 1
OFF_SEQ = 64
OFF_UPDATED = 72   # i64 ns, inside the protected record
OFF_COUNT = 80     # u64 publishes, inside the protected record
_HEADER = struct.Struct("<QII QQQ")  # magic, version, reserved, layout_off, layout_len, data_off (at 0..40)
LAYOUT_OFF = 4096
READ_RETRIES = 10000


class Layout:
    """Ordered (name, size) pairs mapped onto one float64 array."""

    def __init__(self, fields: Sequence[tuple[str, int]]) -> None:
        self.fields = [(str(n), int(s)) for n, s in fields]
        self.offsets: dict[str, tuple[int, int]] = {}
        pos = 0
        for name, size in self.fields:
            if name in self.offsets:
                raise IPCError(f"snapshot layout names {name!r} twice")
            if size < 1:
                raise IPCError(f"snapshot field {name!r} has size {size}")
            self.offsets[name] = (pos, size)
            pos += size
        self.length = pos

    def to_json(self) -> bytes:
        return json.dumps(self.fields).encode()

    @classmethod
    def from_json(cls, data: bytes) -> Layout:
        return cls([tuple(f) for f in json.loads(data)])  # type: ignore[misc]


class Snapshot:
    def __init__(self, name: str, mapping: mmap.mmap) -> None:
        magic, version, _, layout_off, layout_len, data_off = _HEADER.unpack_from(mapping, 0)
        if magic != MAGIC or version != FORMAT_VERSION:
            raise IPCError(f"shared memory {name!r} is not a snapshot of format {FORMAT_VERSION}")
        if layout_off + layout_len > len(mapping):
            raise IPCError(f"shared memory {name!r}: the snapshot's layout lies past its end ({len(mapping)} bytes)")
        self.name = name
        self._mm = mapping
        try:
            self.layout = Layout.from_json(mapping[layout_off: layout_off + layout_len])
        except ValueError as exc:
            raise IPCError(f"shared memory {name!r}: the snapshot's layout cannot be read: {exc}") from None
        if data_off + 8 * self.layout.length > len(mapping):
            raise IPCError(f"shared memory {name!r} is {len(mapping)} bytes, shorter than its layout needs "
                           f"({data_off + 8 * self.layout.length}); its writer must recreate it")
        self._data = np.frombuffer(mapping, dtype="<f8", count=self.layout.length, offset=data_off)

    @classmethod
    def create(cls, name: str, layout: Layout | Sequence[tuple[str, int]]) -> Snapshot:
        """Open the snapshot, creating it if absent; one with another layout is replaced."""
        layout = layout if isinstance(layout, Layout) else Layout(layout)
        blob = layout.to_json()
        data_off = (LAYOUT_OFF + len(blob) + 63) // 64 * 64
        size = data_off + 8 * max(layout.length, 1)
        mapping, created = shm.open_mapping(name, size, create=True)
        if not created:
            try:
                existing = cls(name, mapping)
                if existing.layout.fields == layout.fields:
                    return existing
            except (IPCError, ValueError):
                pass
            mapping.close()
            shm.unlink(name)
            mapping, created = shm.open_mapping(name, size, create=True)
        mapping[LAYOUT_OFF: LAYOUT_OFF + len(blob)] = blob
        np.frombuffer(mapping, dtype="<f8", count=layout.length, offset=data_off)[:] = np.nan
        _HEADER.pack_into(mapping, 0, 0, FORMAT_VERSION, 0, LAYOUT_OFF, len(blob), data_off)
        at.store_u64(mapping, 0, MAGIC)
        return cls(name, mapping)

    @classmethod
    def attach(cls, name: str, timeout_s: float = 0.0) -> Snapshot:
        return cls(name, shm.attach_initialised(name, MAGIC, "snapshot", timeout_s))

    def close(self) -> None:
        self._data = None  # type: ignore[assignment]
        with contextlib.suppress(BufferError):   # a caller still holds a view; the mapping goes with the process
            self._mm.close()

    def unlink(self) -> None:
        shm.unlink(self.name)

    # ----------------------------------------------------------------- writer

    def publish(self, values: Mapping[str, float | np.ndarray | Sequence[float]], timestamp_ns: int | None = None,
                partial: bool = True) -> None:
        """Write ``values`` as one coherent record. With partial=False, fields not given become NaN."""
        offsets = self.layout.offsets
        for key in values:
            if key not in offsets:
                raise IPCError(f"snapshot {self.name!r} has no field {key!r}")
        mm = self._mm
        seq = at.load_u64(mm, OFF_SEQ)
        at.store_u64(mm, OFF_SEQ, seq + 1)
        at.fence_release()
        if not partial:
            self._data[:] = np.nan
        for key, value in values.items():
            start, size = offsets[key]
            if size == 1:
                self._data[start] = value  # type: ignore[assignment]
            else:
                arr = np.asarray(value, dtype=np.float64).reshape(-1)
                n = min(size, arr.size)
                self._data[start: start + n] = arr[:n]
                self._data[start + n: start + size] = np.nan
        struct.pack_into("<q", mm, OFF_UPDATED, time.time_ns() if timestamp_ns is None else timestamp_ns)
        struct.pack_into("<Q", mm, OFF_COUNT, struct.unpack_from("<Q", mm, OFF_COUNT)[0] + 1)
        at.store_u64(mm, OFF_SEQ, seq + 2)

    # ----------------------------------------------------------------- readers

    def read_array(self) -> tuple[np.ndarray, int, int]:
        """(copy of the whole record, updated_ns, publish count), never torn."""
        mm = self._mm
        for _ in range(READ_RETRIES):
            s1 = at.load_u64(mm, OFF_SEQ)
            if s1 & 1:
                time.sleep(0)
                continue
            data = self._data.copy()
            updated, count = struct.unpack_from("<qQ", mm, OFF_UPDATED)
            at.fence_acquire()
            if at.load_u64(mm, OFF_SEQ) == s1:
                return data, updated, count
        raise IPCError(f"snapshot {self.name!r}: writer stuck mid-update (sequence stays odd)")

    def read(self) -> dict[str, float | np.ndarray]:
        data, updated, count = self.read_array()
        out: dict[str, float | np.ndarray] = {"_updated_ns": updated, "_count": count}  # type: ignore[dict-item]
        for name, (start, size) in self.layout.offsets.items():
            out[name] = float(data[start]) if size == 1 else data[start: start + size]
        return out

    def field(self, data: np.ndarray, name: str) -> float | np.ndarray:
        start, size = self.layout.offsets[name]
        return float(data[start]) if size == 1 else data[start: start + size]
