"""Non-volatile record store for revenue data: two alternating slots, sequence number and CRC.

A store named ``energy`` keeps ``energy.a`` and ``energy.b``. Each save writes the whole record
to the slot that does *not* hold the newest valid record, then fsyncs it; the newest valid record
is therefore never touched while a save is in flight. ``load()`` reads both slots, drops any
whose header or CRC does not check, and returns the one with the higher sequence number. After
a crash or power loss at any instant, load returns the last complete record or the one before
it, never a mix and never garbage.

Slot format (little-endian): magic "MREC", format u16, reserved u16, sequence u64, payload
length u32, CRC-32 u32 of (everything before it + payload), then the payload.
"""
from __future__ import annotations

import os
import struct
import zlib
from dataclasses import dataclass
from pathlib import Path

from firmware.storage.atomic import fsync_dir
from hal.errors import StorageError

MAGIC = b"MREC"
FORMAT_VERSION = 1
_HEAD = struct.Struct("<4sHHQI")
_CRC = struct.Struct("<I")
HEADER_SIZE = _HEAD.size + _CRC.size
MAX_PAYLOAD_BYTES = 64 * 1024 * 1024
# Writes go out in chunks so that a crash can land inside a record; the CRC must catch it.
WRITE_CHUNK_BYTES = 4096


@dataclass(frozen=True)
class Record:
    sequence: int
    payload: bytes
    slot: str


class RecordStore:
    def __init__(self, directory: str | os.PathLike[str], name: str) -> None:
        self.directory = Path(directory)
        self.name = name
        self.paths = {"a": self.directory / f"{name}.a", "b": self.directory / f"{name}.b"}
        self._newest: Record | None = None
        self._loaded = False
        self.rejected: dict[str, str] = {}

    def _read_slot(self, slot: str) -> Record | None:
        path = self.paths[slot]
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            return None
        except OSError as exc:
            self.rejected[slot] = f"unreadable: {exc}"
            return None
        if len(data) < HEADER_SIZE:
            self.rejected[slot] = f"{len(data)} bytes, shorter than a header"
            return None
        magic, version, _, sequence, length = _HEAD.unpack_from(data, 0)
        if magic != MAGIC or version != FORMAT_VERSION:
            self.rejected[slot] = "not a record (magic or format)"
            return None
        if len(data) < HEADER_SIZE + length:
            self.rejected[slot] = f"truncated: {len(data) - HEADER_SIZE} of {length} payload bytes"
            return None
        (crc,) = _CRC.unpack_from(data, _HEAD.size)
        payload = data[HEADER_SIZE: HEADER_SIZE + length]
        if zlib.crc32(payload, zlib.crc32(data[: _HEAD.size])) != crc:
            self.rejected[slot] = "CRC mismatch"
            return None
        return Record(sequence, bytes(payload), slot)

    def load(self) -> Record | None:
        """The newest valid record, or None when the store has never been written."""
        self.rejected = {}
        candidates = [r for r in (self._read_slot("a"), self._read_slot("b")) if r is not None]
        self._newest = max(candidates, key=lambda r: r.sequence) if candidates else None
        self._loaded = True
        return self._newest

    def save(self, payload: bytes) -> Record:
        """Write ``payload`` as the next record and fsync it; returns the record written."""
        if len(payload) > MAX_PAYLOAD_BYTES:
            raise StorageError(f"record store {self.name}: payload of {len(payload)} bytes exceeds the maximum")
        if not self._loaded:
            self.load()
        newest = self._newest
        slot = "b" if newest is not None and newest.slot == "a" else "a"
        sequence = newest.sequence + 1 if newest else 1
        head = _HEAD.pack(MAGIC, FORMAT_VERSION, 0, sequence, len(payload))
        crc = zlib.crc32(payload, zlib.crc32(head))
        blob = head + _CRC.pack(crc) + payload
        path = self.paths[slot]
        created = not path.exists()
        self.directory.mkdir(parents=True, exist_ok=True)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o644)
            try:
                view = memoryview(blob)
                offset = 0
                while offset < len(blob):
                    offset += os.pwrite(fd, view[offset: offset + WRITE_CHUNK_BYTES], offset)
                os.ftruncate(fd, len(blob))
                os.fsync(fd)
            finally:
                os.close(fd)
            if created:
                fsync_dir(self.directory)
        except OSError as exc:
            raise StorageError(f"record store {self.name}: cannot write {path}: {exc}") from exc
        self._newest = Record(sequence, bytes(payload), slot)
        return self._newest
