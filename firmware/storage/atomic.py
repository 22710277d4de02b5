"""Atomic file replacement: temp file in the same directory, fsync, rename, fsync of the directory.

After a crash at any point the path holds either the complete old content or the complete new
content, never a mix and never an empty file.
"""
from __future__ import annotations

import ctypes
import os
import threading
from pathlib import Path


def fsync_dir(directory: str | os.PathLike[str]) -> None:
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def sync_filesystem(path: str | os.PathLike[str]) -> None:
    """Everything written to the file system that holds ``path`` (files, directories, links) made durable by
    one syncfs(2), in place of an fsync of each of thousands of files (each a journal commit where the file
    was linked); sync(2) where the C library has no syncfs."""
    fd = os.open(path, os.O_RDONLY)
    try:
        syncfs = getattr(ctypes.CDLL(None, use_errno=True), "syncfs", None)
        if syncfs is None:
            os.sync()
        elif syncfs(fd) != 0:
            err = ctypes.get_errno()
            raise OSError(err, f"syncfs {path}: {os.strerror(err)}")
    finally:
        os.close(fd)


def atomic_write(path: str | os.PathLike[str], data: bytes, mode: int = 0o644, sync: bool = True) -> None:
    """``sync=False`` skips the fsyncs: the file is still replaced whole, and survives the process being killed,
    but a power failure may bring back the content before (for state that is saved often and synced now and then)."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    for stale in target.parent.glob(f".{target.name}.tmp-*"):
        if not _writer_alive(stale.name.rpartition(".tmp-")[2]):
            stale.unlink(missing_ok=True)  # left by a writer killed mid-save (not one writing now)
    tmp = target.with_name(f".{target.name}.tmp-{os.getpid()}-{threading.get_ident()}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    try:
        if not mode & 0o077:
            os.fchmod(fd, mode)    # a private file is private whatever the umask (the umask only narrows)
        view = memoryview(data)
        while view:
            written = os.write(fd, view)
            view = view[written:]
        if sync:
            os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, target)
    if sync:
        fsync_dir(target.parent)


def _writer_alive(tag: str) -> bool:
    """Whether the process that named a temporary file ``...tmp-PID[-THREAD]`` still runs."""
    pid = tag.partition("-")[0]
    if not pid.isdigit():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return int(pid) != os.getpid() or "-" in tag     # this process: only its threads' files are live


def append_durable(path: str | os.PathLike[str], line: bytes, mode: int = 0o644) -> None:
    """Append one record and fsync it (for small, rarely written journals such as config history)."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    new = not target.exists()
    fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_APPEND, mode)
    try:
        if not mode & 0o077:
            os.fchmod(fd, mode)
        os.write(fd, line)
        os.fsync(fd)
    finally:
        os.close(fd)
    if new:
        fsync_dir(target.parent)
