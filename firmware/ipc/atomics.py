"""Acquire/release loads and stores and futex waits on shared memory (C), with a Python fallback.

The fallback is correct on x86 (total store order) but not guaranteed on aarch64, and waits by
sleeping in 1 ms steps instead of sleeping in the kernel; the meter says so once at start-up.
"""
from __future__ import annotations

import logging
import struct
import time

log = logging.getLogger("ipc")

try:
    from firmware.ipc import _atomics as _c  # type: ignore[attr-defined]

    load_u64 = _c.load_u64
    store_u64 = _c.store_u64
    load_u32 = _c.load_u32
    add_u32 = _c.add_u32
    fence_acquire = _c.fence_acquire
    fence_release = _c.fence_release
    futex_wait = _c.futex_wait
    futex_wake = _c.futex_wake
    ring_write = _c.ring_write
    ring_copy = _c.ring_copy
    NATIVE = True
except ImportError:  # no C compiler at install time
    NATIVE = False
    _U64 = struct.Struct("<Q")
    _U32 = struct.Struct("<I")

    def load_u64(buf, off):  # type: ignore[no-untyped-def]
        return _U64.unpack_from(buf, off)[0]

    def store_u64(buf, off, value):  # type: ignore[no-untyped-def]
        _U64.pack_into(buf, off, value)

    def load_u32(buf, off):  # type: ignore[no-untyped-def]
        return _U32.unpack_from(buf, off)[0]

    def add_u32(buf, off, delta):  # type: ignore[no-untyped-def]
        value = (_U32.unpack_from(buf, off)[0] + delta) & 0xFFFFFFFF
        _U32.pack_into(buf, off, value)
        return value

    def fence_acquire():  # type: ignore[no-untyped-def]
        return None

    def fence_release():  # type: ignore[no-untyped-def]
        return None

    def futex_wait(buf, off, expected, timeout_s):  # type: ignore[no-untyped-def]
        deadline = time.monotonic() + timeout_s
        while _U32.unpack_from(buf, off)[0] == expected:
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.001)
        return True

    def futex_wake(buf, off, n):  # type: ignore[no-untyped-def]
        return 0

    ring_write = None  # type: ignore[assignment]
    ring_copy = None  # type: ignore[assignment]


def report_once() -> None:
    if not NATIVE:
        log.warning("IPC runs without its C atomics: readers poll every 1 ms and memory ordering is only "
                    "guaranteed on x86; install a C compiler and reinstall to fix")
