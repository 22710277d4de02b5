"""The names of the meter's shared-memory objects, in one place: every process that creates or attaches one
imports its name from here.

A name is ``<instance>.<object>`` under /dev/shm; the instance is derived from the meter's run directory,
so meters (and tests) on one host never collide.
"""
from __future__ import annotations

import hashlib
from pathlib import Path

SAMPLES = "samples"                # ring of sample blocks: acquisition writes, metrology reads
CHIP_ENERGY = "chip_energy"        # snapshot of the chip's energy registers: acquisition writes
CHIP_INTERVALS = "chip_intervals"  # ring of chip energy intervals (firmware.ipc.chipenergy): acquisition -> metrology
MEASUREMENTS = "measurements"      # snapshot of the published points: metrology writes; comms, the supervisor's
                                   # health check and the revenue-lock readers read
PQ_EVENTS = "pq_events"            # ring of PQ records (firmware.ipc.pqrecords): metrology writes, the recorder
                                   # reads (events, half-cycle RMS, aggregates, capture requests)
IO = "io"                          # snapshot of the digital inputs, outputs and alarms (firmware.io): the io
                                   # service writes; the revenue registers and metrology read
TIME = "time"                      # snapshot of the time quality (firmware.timesync): the time service writes,
                                   # metrology copies time_synced from it


def instance_name(run_dir: str | Path) -> str:
    """Prefix for this meter's shared-memory names."""
    digest = hashlib.sha1(str(Path(run_dir).resolve()).encode()).hexdigest()[:10]
    return f"meter-{digest}"


def shm_name(instance: str, what: str) -> str:
    return f"{instance}.{what}"


def instance_glob(instance: str) -> str:
    """Pattern of every shared-memory file of one instance (under ``firmware.ipc.shm.SHM_DIR``)."""
    return f"{instance}.*"
