"""Remove what a test's in-process services left in shared memory: a service closes its objects but never
unlinks them (the supervisor does, for the whole instance, when it stops), so a test that runs services
without a supervisor sweeps their instance itself."""
from __future__ import annotations

from pathlib import Path

from firmware.ipc import shm
from firmware.ipc.names import instance_glob, instance_name


def sweep_instance(run_dir: Path) -> None:
    for path in shm.SHM_DIR.glob(instance_glob(instance_name(run_dir))):
        shm.unlink(path.name)
