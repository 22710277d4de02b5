"""Named shared-memory files in /dev/shm, mapped read-write, without Python's resource tracker.

The meter's rings and snapshots outlive the processes that write them (a restarted writer
re-opens the same mapping and carries on), so nothing here unlinks on exit; the supervisor
removes them at shutdown.

/dev/shm is writable by every local account, so an object is only used when it is ours: a regular file
(not a link), owned by this process's user (or root), and writable by nobody else (mode 0600 or 0640).
Anything else under a meter's name was put there by someone else (to feed the meter false readings, or to
truncate it under a reader) and is refused with an error that says whose it is and what to do. A writer
creates with O_EXCL, and replaces an object only when it is its own. A mapping never reaches past the end of
the object as it is when mapped; an object shorter than its writer needs is replaced (ours) or refused.
"""
from __future__ import annotations

import contextlib
import mmap
import os
import re
import stat
import time
from pathlib import Path

from hal.errors import IPCError

SHM_DIR = Path(os.environ.get("METER_SHM_DIR", "/dev/shm"))
_NAME_RE = re.compile(r"[A-Za-z0-9_.-]{1,200}")
MODE = 0o600
_OPEN_FLAGS = os.O_RDWR | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)


def shm_path(name: str) -> Path:
    if not _NAME_RE.fullmatch(name):
        raise IPCError(f"shared-memory name {name!r} is not valid; use letters, digits, '.', '_', '-'")
    return SHM_DIR / name


def check_ours(fd: int, name: str) -> os.stat_result:
    """The object's stat when it is ours and private; IPCError saying whose it is otherwise."""
    st = os.fstat(fd)
    where = shm_path(name)
    if not stat.S_ISREG(st.st_mode):
        raise IPCError(f"shared memory {where} is not a regular file; it is not the meter's: remove it "
                       "(as root) and restart the meter")
    if st.st_uid not in (os.geteuid(), 0):
        raise IPCError(f"shared memory {where} belongs to uid {st.st_uid}, not to the meter (uid {os.geteuid()}): "
                       "another account created it, perhaps to feed the meter false values; remove it (as root) "
                       "and restart the meter")
    if st.st_mode & 0o037:
        raise IPCError(f"shared memory {where} has mode {stat.S_IMODE(st.st_mode):04o}; others could change "
                       "it: the meter uses only 0600 or 0640 objects; remove it (as root) and restart the meter")
    return st


def _create(path: Path, size: int) -> int | None:
    """A new object of ``size`` bytes, or None when the name exists already."""
    try:
        fd = os.open(path, _OPEN_FLAGS | os.O_CREAT | os.O_EXCL, MODE)
    except FileExistsError:
        return None
    try:
        os.fchmod(fd, MODE)           # whatever the umask took away or added
        os.ftruncate(fd, size)
    except OSError:
        os.close(fd)
        raise
    return fd


def open_mapping(name: str, size: int | None, create: bool) -> tuple[mmap.mmap, bool]:
    """Map ``name``; with create, make it ``size`` bytes when absent. Returns (mapping, created).

    An existing object is used only when ours (``check_ours``). With create, one of ours that is shorter
    than ``size`` is replaced.
    """
    path = shm_path(name)
    for _ in range(3):
        created = False
        fd = _create(path, size) if create and size is not None else None
        if fd is not None:
            created = True
        else:
            try:
                fd = os.open(path, _OPEN_FLAGS)
            except FileNotFoundError:
                if not create:
                    raise IPCError(f"shared memory {name!r} does not exist (is its writer running?)") from None
                continue                  # removed between our two opens: create it again
            except OSError as exc:
                raise IPCError(f"shared memory {path} cannot be opened: {exc}; if it is not the meter's, remove it "
                               "(as root) and restart the meter") from None
        try:
            actual = check_ours(fd, name).st_size
            if actual == 0:
                raise IPCError(f"shared memory {name!r} is empty (its writer is still creating it)")
            if create and size is not None and actual < size:
                # Ours but too short (an older layout, or cut short): replace it, never map past its end.
                os.close(fd)
                fd = -1
                unlink(name)
                continue
            # Populate the page tables now: a page fault in the acquisition path costs microseconds each.
            flags = mmap.MAP_SHARED | getattr(mmap, "MAP_POPULATE", 0)
            return mmap.mmap(fd, actual, flags=flags), created
        finally:
            if fd >= 0:
                os.close(fd)
    raise IPCError(f"shared memory {path} keeps changing under the meter; is another program using that name?")


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

