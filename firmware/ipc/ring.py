"""Shared-memory ring: one writer, many readers, each reader with its own position.

Layout (little-endian): a 4096-byte header, then ``n_slots`` slots of ``stride`` bytes. Each
slot starts with a 64-bit sequence word and a 64-bit length, then ``slot_size`` payload bytes.
For the record at position ``p`` the writer stores ``2p+1`` in the slot's sequence word before
touching the payload and ``2p+2`` (release) after it, then advances ``head`` to ``p+1``. A
reader copies a slot only when its sequence word is ``2p+2`` and checks it again after the copy
(acquire fence in between): a changed word means the writer lapped the reader mid-copy, so the
record is counted as lost instead of returned torn.

Readers never slow the writer down. A reader that falls more than ``n_slots - 1`` records
behind jumps to the oldest record that cannot be in the middle of a rewrite and adds the skipped
count to ``lost``, exactly. Readers sleep on a futex word the writer bumps after each record (or once after a
``batch`` of them), so an idle reader costs nothing and wakes within the kernel's scheduling latency.

A writer that restarts re-opens the same ring and continues from ``head``; readers carry on.
"""
from __future__ import annotations

import mmap
import struct
import time
from contextlib import contextmanager
from typing import Iterator

from firmware.ipc import atomics as at
from firmware.ipc import shm
from hal.errors import IPCError

MAGIC = 0x474E4952_4D4F454D  # "MEORRING"
FORMAT_VERSION = 1
HEADER_SIZE = 4096
SLOT_HEADER = 16
_GEOMETRY = struct.Struct("<QIIQQQ")  # magic, version, reserved, slot_size, n_slots, stride
OFF_HEAD = 64        # u64: records written so far (position of the next record)
OFF_WAKE = 128       # u32: bumped after each record, futex word for readers
OFF_WAITERS = 132    # u32: readers sleeping on OFF_WAKE
OFF_WRITER_PID = 192  # u64: pid of the current writer (diagnostics)
WAKE_ALL = 0x7FFFFFFF


def _stride(slot_size: int) -> int:
    return (SLOT_HEADER + slot_size + 63) // 64 * 64


class Ring:
    def __init__(self, name: str, mapping: mmap.mmap) -> None:
        self.name = name
        self._mm = mapping
        magic, version, _, slot_size, n_slots, stride = _GEOMETRY.unpack_from(mapping, 0)
        if magic != MAGIC or version != FORMAT_VERSION:
            raise IPCError(f"shared memory {name!r} is not a ring of format {FORMAT_VERSION}")
        if stride != _stride(slot_size) or HEADER_SIZE + n_slots * stride > len(mapping):
            raise IPCError(f"shared memory {name!r} is {len(mapping)} bytes, shorter than its ring geometry needs "
                           f"({HEADER_SIZE + n_slots * stride}); its writer must recreate it")
        self.slot_size = slot_size
        self.n_slots = n_slots
        self.stride = stride
        self._view = memoryview(mapping)
        self.native = at.NATIVE  # False forces the Python reference path (tests compare both)
        self._batch_depth = 0    # inside batch(): records reserved are published, their readers woken at its end
        self._unwoken = False

    # ----------------------------------------------------------------- lifecycle

    @classmethod
    def create(cls, name: str, slot_size: int, n_slots: int) -> Ring:
        """Open the ring, creating it if absent. An existing ring of another geometry is replaced."""
        if slot_size < 1 or n_slots < 2:
            raise IPCError(f"ring {name!r}: need slot_size >= 1 and n_slots >= 2")
        size = HEADER_SIZE + n_slots * _stride(slot_size)
        mapping, created = shm.open_mapping(name, size, create=True)
        if not created:
            geometry = _GEOMETRY.unpack_from(mapping, 0)
            if geometry != (MAGIC, FORMAT_VERSION, 0, slot_size, n_slots, _stride(slot_size)):
                mapping.close()
                shm.unlink(name)
                mapping, created = shm.open_mapping(name, size, create=True)
        if created:
            _GEOMETRY.pack_into(mapping, 0, 0, FORMAT_VERSION, 0, slot_size, n_slots, _stride(slot_size))
            at.store_u64(mapping, 0, MAGIC)  # magic last: attachers never see a half-initialised header
        return cls(name, mapping)

    @classmethod
    def attach(cls, name: str, timeout_s: float = 0.0) -> Ring:
        """Attach to an existing ring, waiting up to ``timeout_s`` for its writer to create it."""
        return cls(name, shm.attach_initialised(name, MAGIC, "ring", timeout_s))

    def close(self) -> None:
        self._view.release()
        self._mm.close()

    def unlink(self) -> None:
        shm.unlink(self.name)

    # ----------------------------------------------------------------- writer side

    @property
    def head(self) -> int:
        return at.load_u64(self._mm, OFF_HEAD)

    def _slot_offset(self, position: int) -> int:
        return HEADER_SIZE + (position % self.n_slots) * self.stride

    def write(self, data: bytes | bytearray | memoryview) -> int:
        """Append one record; returns its position."""
        n = len(data)
        if n > self.slot_size:
            raise IPCError(f"record of {n} bytes does not fit a slot of {self.slot_size} bytes")
        if self.native:
            return at.ring_write(self._mm, data)
        return self._write_reference(data)

    def _write_reference(self, data: bytes | bytearray | memoryview) -> int:
        """The publish protocol in Python: the reference for the C ``ring_write``."""
        n = len(data)
        with self.reserve() as slot:
            slot.buffer[:n] = data
            slot.commit(n)
        return slot.position

    @contextmanager
    def reserve(self) -> Iterator[_Slot]:
        """Write a record in place: ``with ring.reserve() as s: fill s.buffer; s.commit(nbytes)``."""
        position = at.load_u64(self._mm, OFF_HEAD)
        off = self._slot_offset(position)
        at.store_u64(self._mm, off, 2 * position + 1)
        at.fence_release()
        slot = _Slot(self._view[off + SLOT_HEADER: off + SLOT_HEADER + self.slot_size], position)
        yield slot
        if slot.length is None:
            raise IPCError(f"ring {self.name!r}: record reserved but never committed")
        struct.pack_into("<Q", self._mm, off + 8, slot.length)
        at.store_u64(self._mm, off, 2 * position + 2)
        at.store_u64(self._mm, OFF_HEAD, position + 1)
        if self._batch_depth:
            self._unwoken = True
        else:
            self._wake_readers()

    @contextmanager
    def batch(self) -> Iterator[None]:
        """Records reserved inside are each readable as soon as committed, but sleeping readers are woken once,
        at the end: a writer that publishes several records at a time wakes each reader once for all of them."""
        self._batch_depth += 1
        try:
            yield
        finally:
            self._batch_depth -= 1
            if not self._batch_depth and self._unwoken:
                self._unwoken = False
                self._wake_readers()

    def _wake_readers(self) -> None:
        at.add_u32(self._mm, OFF_WAKE, 1)
        if at.load_u32(self._mm, OFF_WAITERS):
            at.futex_wake(self._mm, OFF_WAKE, WAKE_ALL)

    # ----------------------------------------------------------------- reader side (used by RingReader)

    def _try_copy(self, position: int) -> bytes | None | bool:
        """bytes: the record; None: not written yet; False: overwritten (lost)."""
        if self.native:
            return at.ring_copy(self._mm, position)
        return self._copy_reference(position)

    def _copy_reference(self, position: int) -> bytes | None | bool:
        """The reader's copy-and-check in Python: the reference for the C ``ring_copy``."""
        off = self._slot_offset(position)
        want = 2 * position + 2
        s1 = at.load_u64(self._mm, off)
        if s1 < want:
            return None
        if s1 > want:
            return False
        (length,) = struct.unpack_from("<Q", self._mm, off + 8)
        if length > self.slot_size:
            return False
        data = self._mm[off + SLOT_HEADER: off + SLOT_HEADER + length]
        at.fence_acquire()
        if at.load_u64(self._mm, off) != want:
            return False
        return data


class _Slot:
    __slots__ = ("buffer", "position", "length")

    def __init__(self, buffer: memoryview, position: int) -> None:
        self.buffer = buffer
        self.position = position
        self.length: int | None = None

    def commit(self, nbytes: int) -> None:
        if not 0 <= nbytes <= len(self.buffer):
            raise IPCError(f"record of {nbytes} bytes does not fit a slot of {len(self.buffer)} bytes")
        self.length = nbytes


class RingReader:
    """One reader's position in a ring. ``lost`` counts records overwritten before this reader got them."""

    def __init__(self, ring: Ring, start: str = "latest") -> None:
        if start not in ("latest", "oldest"):
            raise ValueError("start must be 'latest' or 'oldest'")
        self.ring = ring
        head = ring.head
        self.position = head if start == "latest" else max(0, head - ring.n_slots + 1)
        self.lost = 0
        self.read_count = 0

    def available(self) -> int:
        return self.ring.head - self.position

    def read(self, timeout_s: float | None = 0.0) -> bytes | None:
        """Next record, waiting up to ``timeout_s`` (None: forever); None on timeout."""
        ring, mm = self.ring, self.ring._mm
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        while True:
            head = at.load_u64(mm, OFF_HEAD)
            if head > self.position:
                oldest_safe = head - ring.n_slots + 1
                if self.position < oldest_safe:
                    self.lost += oldest_safe - self.position
                    self.position = oldest_safe
                result = ring._try_copy(self.position)
                if result is False:
                    self.lost += 1
                    self.position += 1
                    continue
                if result is not None:
                    self.position += 1
                    self.read_count += 1
                    return result  # type: ignore[return-value]
            if not self._wait(head, deadline):
                return None

    def _wait(self, head_seen: int, deadline: float | None) -> bool:
        mm = self.ring._mm
        wake = at.load_u32(mm, OFF_WAKE)
        at.add_u32(mm, OFF_WAITERS, 1)
        try:
            if at.load_u64(mm, OFF_HEAD) != head_seen:
                return True
            remaining = 3600.0 if deadline is None else deadline - time.monotonic()
            if remaining <= 0:
                return False
            at.futex_wait(mm, OFF_WAKE, wake, remaining)
            return True
        finally:
            at.add_u32(mm, OFF_WAITERS, -1)

    def __iter__(self) -> Iterator[bytes]:
        while True:
            record = self.read(None)
            if record is not None:
                yield record
