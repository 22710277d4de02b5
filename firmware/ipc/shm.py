"""Named shared-memory files in /dev/shm, mapped read-write, without Python's resource tracker.

The meter's rings and snapshots outlive the processes that write them (a restarted writer
re-opens the same mapping and carries on), so nothing here unlinks on exit; the supervisor
removes them at shutdown.
"""
from __future__ import annotations

import contextlib
import mmap
import os
import re
import time
from pathlib import Path

from hal.errors import IPCError

SHM_DIR = Path(os.environ.get("METER_SHM_DIR", "/dev/shm"))
_NAME_RE = re.compile(r"[A-Za-z0-9_.-]{1,200}")


def shm_path(name: str) -> Path:
    if not _NAME_RE.fullmatch(name):
        raise IPCError(f"shared-memory name {name!r} is not valid; use letters, digits, '.', '_', '-'")
    return SHM_DIR / name


def open_mapping(name: str, size: int | None, create: bool) -> tuple[mmap.mmap, bool]:
    """Map ``name``; with create, make it ``size`` bytes when absent. Returns (mapping, created)."""
    path = shm_path(name)
    created = False
    try:
        fd = os.open(path, os.O_RDWR)
    except FileNotFoundError:
        if not create:
            raise IPCError(f"shared memory {name!r} does not exist (is its writer running?)") from None
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600)
        created = True
    try:
        if created:
            assert size is not None
            os.ftruncate(fd, size)
        actual = os.fstat(fd).st_size
        if actual == 0:
            raise IPCError(f"shared memory {name!r} is empty (its writer is still creating it)")
        # Populate the page tables now: a page fault in the acquisition path costs microseconds each.
        flags = mmap.MAP_SHARED | getattr(mmap, "MAP_POPULATE", 0)
        return mmap.mmap(fd, actual, flags=flags), created
    finally:
        os.close(fd)


def unlink(name: str) -> None:
    with contextlib.suppress(FileNotFoundError):
        shm_path(name).unlink()


def attach_initialised(name: str, magic: int, what: str, timeout_s: float) -> mmap.mmap:
    """Map an existing ``name`` whose first u64 is ``magic``, waiting up to ``timeout_s`` for its writer.

    Writers store the magic last (release), so a mapping that shows it is fully initialised.
    """
    from firmware.ipc import atomics

    deadline = time.monotonic() + timeout_s
    while True:
        try:
            mapping, _ = open_mapping(name, None, create=False)
            if atomics.load_u64(mapping, 0) == magic:
                return mapping
            mapping.close()
        except IPCError:
            if time.monotonic() >= deadline:
                raise
        if time.monotonic() >= deadline:
            raise IPCError(f"{what} {name!r} exists but was never initialised")
        time.sleep(0.01)

