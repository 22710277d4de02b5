"""Power-ups of the meter: how many, and when the present one began (ION7400 "power up" counter and the unary
power-up alarm; BACnet AI81 Power_Up_Count).

A power-up is a start of the supervisor: on the device systemd starts it once per boot, so it counts the
meter's power cycles, and on the simulated board each ``meter run`` is one. A restarted service is not a
power-up; it reads the count the supervisor wrote (``read``). The count survives in ``data_dir/powerup.json``,
written whole (``atomic_write``) before any service starts.
"""
from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path

from firmware.storage.atomic import atomic_write

FILE_NAME = "powerup.json"


@dataclass(frozen=True)
class PowerUp:
    count: int              # power-ups since the meter's data directory was made (this one included)
    utc: float              # when the present power-up began (s since 1970); NaN before the first


def read(data_dir: str | Path) -> PowerUp:
    path = Path(data_dir) / FILE_NAME
    try:
        doc = json.loads(path.read_text())
        return PowerUp(int(doc["count"]), float(doc["utc"]))
    except FileNotFoundError:
        return PowerUp(0, float("nan"))
    except (ValueError, KeyError, TypeError):
        # a damaged file (written whole, so only by hand) restarts the count rather than stopping the meter
        return PowerUp(0, float("nan"))


def record(data_dir: str | Path, now: float | None = None) -> PowerUp:
    """Count one power-up (the supervisor's start)."""
    previous = read(data_dir)
    current = PowerUp(previous.count + 1, time.time() if now is None else now)
    Path(data_dir).mkdir(parents=True, exist_ok=True)
    atomic_write(Path(data_dir) / FILE_NAME, json.dumps({"count": current.count, "utc": current.utc}).encode())
    return current
