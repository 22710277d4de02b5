"""The revenue lock: the one place every process reads it.

The lock is a sealable switch on a board GPIO input, owned by the revenue registers in the metrology
process, which publish it as the ``revenue_locked`` point of the measurement snapshot. On the
simulated board the switch is the file ``[upgrade] revenue_lock_file`` (locked while it holds one of
``LOCKED_WORDS``). The meter counts as locked when either source says so; a switch file that cannot be
read, or a snapshot that exists but cannot be read, counts as locked: a protected change (sealed
configuration, firmware upgrade) is refused rather than allowed by mistake.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from firmware.ipc.names import MEASUREMENTS, instance_name, shm_name
from hal.errors import IPCError

LOCKED_WORDS = {"locked", "1", "on", "true", "yes"}


def file_lock_state(path: str | Path) -> bool:
    """The simulated switch: True while the file says locked (or cannot be read), False when it is absent."""
    try:
        return Path(path).read_text().strip().lower() in LOCKED_WORDS
    except FileNotFoundError:
        return False
    except (OSError, UnicodeDecodeError):
        return True


def set_file_lock(path: str | Path, locked: bool) -> None:
    """Set the simulated switch (tests and the simulated board's front panel)."""
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_text("locked\n" if locked else "unlocked\n")


def revenue_locked_at(lock_file: str | Path, run_dir: str | Path) -> bool:
    """The lock of the meter whose run directory is ``run_dir``: its switch file, then its published point."""
    if file_lock_state(lock_file):
        return True
    from firmware.ipc import shm
    from firmware.ipc.snapshot import Snapshot

    name = shm_name(instance_name(Path(run_dir)), MEASUREMENTS)
    if not shm.shm_path(name).exists():
        return False  # meter not running: only the switch file (or, on the device, the GPIO owner) decides
    try:
        snap = Snapshot.attach(name)
        try:
            data, _, count = snap.read_array()
            value = snap.field(data, "revenue_locked") if "revenue_locked" in snap.layout.offsets else 0.0
        finally:
            snap.close()
    except (IPCError, OSError, ValueError):
        return True
    return bool(count) and bool(value == value and value >= 0.5)


def revenue_locked(config: Any) -> bool:
    """The lock of the meter that runs with ``config``."""
    return revenue_locked_at(config.upgrade.revenue_lock_file, config.meter.run_dir)
