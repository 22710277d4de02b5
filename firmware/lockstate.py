"""The revenue lock as every process other than its owner sees it.

The lock is a sealable switch on a board GPIO input, owned by the revenue registers in the metrology
process, which publish it as the ``revenue_locked`` point of the measurement snapshot. On the
simulated board the switch is the file ``[upgrade] revenue_lock_file``. The meter counts as locked
when either source says so, and a snapshot that exists but cannot be read counts as locked: a
protected change is refused rather than allowed by mistake.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from firmware.upgrade.lock import file_lock_state
from hal.errors import IPCError


def revenue_locked(config: Any) -> bool:
    if file_lock_state(config.upgrade.revenue_lock_file):
        return True
    from firmware.ipc import shm
    from firmware.ipc.snapshot import Snapshot
    from firmware.service import instance_name

    name = f"{instance_name(Path(config.meter.run_dir))}.measurements"
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
    return bool(count) and value == value and value >= 0.5
