"""The names of the meter's shared-memory objects, in one place: every process that creates or attaches one
imports its name from here.

A name is ``<instance>.<object>`` under /dev/shm. /dev/shm is writable by every local account, so a name
another account can predict can be taken before the meter starts (the meter refuses an object that is not
its own, which would stop metering). The supervisor therefore draws the instance at random at every start
(``firmware.ipc.instance``) and keeps it in ``TOKEN_FILE`` in the run directory (mode 0600): every process
of the meter, the CLI and the tests read it from there. Without that file (services run by a test without
a supervisor) the instance is derived from the run directory, so test runs on one host never collide.
"""
from __future__ import annotations

import hashlib
import os
import re
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


OBJECTS = (SAMPLES, CHIP_ENERGY, CHIP_INTERVALS, MEASUREMENTS, PQ_EVENTS, IO, TIME)

TOKEN_FILE = "shm.token"
TOKEN_RE = re.compile(r"[0-9a-f]{32}")
PREFIX = "meter-"


def read_token(run_dir: str | Path) -> str | None:
    """The token the supervisor drew at its last start, or None (no supervisor has started here)."""
    try:
        fd = os.open(Path(run_dir) / TOKEN_FILE, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError:               # absent, or a link (ELOOP): not a token the supervisor wrote
        return None
    with os.fdopen(fd) as f:
        token = f.read(64).strip()
    return token if TOKEN_RE.fullmatch(token) else None


def instance_of_token(token: str) -> str:
    return f"{PREFIX}{token}"


def instance_name(run_dir: str | Path) -> str:
    """Prefix for this meter's shared-memory names: the supervisor's token when one has started here."""
    token = read_token(run_dir)
    if token is not None:
        return instance_of_token(token)
    digest = hashlib.sha1(str(Path(run_dir).resolve()).encode()).hexdigest()[:10]
    return f"meter-{digest}"


def shm_name(instance: str, what: str) -> str:
    return f"{instance}.{what}"


def instance_glob(instance: str) -> str:
    """Pattern of every shared-memory file of one instance (under ``firmware.ipc.shm.SHM_DIR``)."""
    return f"{instance}.*"
