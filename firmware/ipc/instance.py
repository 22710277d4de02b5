"""The supervisor's choice of its shared-memory instance at each start (names in ``firmware.ipc.names``).

Another local account can create files in /dev/shm under any name it can guess; the meter refuses such an
object (``firmware.ipc.shm.check_ours``), so a guessed name would stop metering. A token of 128 random bits,
drawn at every start and readable only by the meter (``names.TOKEN_FILE``, 0600), makes the names
unguessable before the start. A name taken anyway (a name seen in /dev/shm during an earlier start, or a
guess that hit) is reported as a security event naming the path, and another token is drawn, so the meter
still meters. The segments of the previous start (a supervisor killed before it could remove them) are
removed first, when they are ours: their token is forgotten once a new one is written.
"""
from __future__ import annotations

import contextlib
import os
import secrets
from pathlib import Path
from typing import Any, Callable

from firmware.ipc import names, shm
from hal.errors import IPCError

DRAWS = 8     # a fresh random token is taken by someone else only if they can read the token file


def sweep(instance: str) -> None:
    """Remove the instance's segments that are ours; another account's objects are left (we cannot remove
    them from sticky /dev/shm, and they are not ours to remove)."""
    for path in shm.SHM_DIR.glob(names.instance_glob(instance)):
        with contextlib.suppress(OSError):
            if path.lstat().st_uid in (os.geteuid(), 0) and not path.is_symlink():
                shm.unlink(path.name)


def taken(instance: str) -> list[Path]:
    """Objects already present under the instance's names."""
    return [shm.SHM_DIR / names.shm_name(instance, what) for what in names.OBJECTS
            if os.path.lexists(shm.SHM_DIR / names.shm_name(instance, what))]


def start_instance(run_dir: Path, on_squat: Callable[[Path], None],
                   draw: Callable[[], str] = lambda: secrets.token_hex(16)) -> str:
    """Sweep the previous start's segments, draw a free instance, write its token; returns the instance."""
    run_dir.mkdir(parents=True, exist_ok=True)
    previous = names.read_token(run_dir)
    if previous is not None:
        sweep(names.instance_of_token(previous))
    for _ in range(DRAWS):
        token = draw()
        instance = names.instance_of_token(token)
        squatted = taken(instance)
        for path in squatted:
            on_squat(path)
        if not squatted:
            _write_token(run_dir, token)
            return instance
    raise IPCError(f"every shared-memory name drawn under {shm.SHM_DIR} was taken ({DRAWS} draws): "
                   "someone reads the meter's token file or fills /dev/shm; see the security events")


def _write_token(run_dir: Path, token: str) -> None:
    """Replace the token file atomically, 0600 whatever the umask, never through a link."""
    tmp = run_dir / f".{names.TOKEN_FILE}.{os.getpid()}"
    with contextlib.suppress(FileNotFoundError):
        tmp.unlink()
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    try:
        os.fchmod(fd, 0o600)
        os.write(fd, token.encode() + b"\n")
    finally:
        os.close(fd)
    os.replace(tmp, run_dir / names.TOKEN_FILE)


def squat_reporter(config: Any) -> Callable[[Path], None]:
    """Report a taken name as a ``shm_squat`` security event: who owns the object, at what path."""
    from firmware.security.audit import SecurityAudit

    def report(path: Path) -> None:
        try:
            st = path.lstat()
            owner = f"uid {st.st_uid}, mode {st.st_mode & 0o7777:04o}"
        except OSError:
            owner = "gone"
        audit = SecurityAudit.from_config(config, source="supervisor")
        try:
            audit.record("shm_squat", "", f"shared memory {path} taken by another ({owner}); another name drawn",
                         {"path": str(path), "owner": owner})
        finally:
            audit.close()
    return report
