"""chrony, the system's NTP engine, through chronyc: tracking state, source lines, manual time sets.

The meter never runs its own NTP client: chronyd (a Debian package, a systemd service on the device)
disciplines the clock. The time service writes chrony's ``server`` lines into a file that chronyd reads
through ``sourcedir`` and asks it to reload them, reads ``chronyc -c tracking`` (CSV) on every poll, and
hands protocol time sets to chrony's manual reference (``settime``), so one engine owns the clock.
"""
from __future__ import annotations

import os
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from hal.errors import MeterError

CHRONYC_TIMEOUT_S = 5.0
# Leap status as chronyc prints it, to the code the time snapshot carries (time_leap).
LEAP_CODES = {"Normal": 0, "Insert second": 1, "Delete second": 2, "Not synchronised": 3}
TRACKING_FIELDS = 14


class ChronyError(MeterError):
    """chronyc failed, timed out, or answered something that is not chrony's tracking format."""


@dataclass(frozen=True)
class Tracking:
    """One ``chronyc -c tracking`` answer (chrony's convention: positive offsets mean the clock is fast)."""

    ref_id: str
    ref_name: str
    stratum: int
    ref_time: float          # UTC of the last clock update (0: never)
    system_offset: float     # system time - NTP time now, still being slewed away (s)
    last_offset: float       # offset at the last clock update (s)
    rms_offset: float
    frequency_ppm: float
    residual_ppm: float
    skew_ppm: float
    root_delay: float
    root_dispersion: float
    update_interval: float
    leap: str

    @property
    def root_distance(self) -> float:
        """The largest error the clock can have against the reference (RFC 5905 root distance)."""
        return self.root_delay / 2 + self.root_dispersion

    @property
    def leap_code(self) -> int:
        return LEAP_CODES.get(self.leap, 3)

    @classmethod
    def parse(cls, text: str) -> Tracking:
        line = text.strip().splitlines()[-1] if text.strip() else ""
        fields = line.split(",")
        if len(fields) != TRACKING_FIELDS:
            raise ChronyError(f"chronyc tracking: expected {TRACKING_FIELDS} CSV fields, got {line!r}")
        try:
            return cls(fields[0], fields[1], int(fields[2]), float(fields[3]), float(fields[4]), float(fields[5]),
                       float(fields[6]), float(fields[7]), float(fields[8]), float(fields[9]), float(fields[10]),
                       float(fields[11]), float(fields[12]), fields[13])
        except ValueError as exc:
            raise ChronyError(f"chronyc tracking: unreadable field in {line!r}: {exc}") from None


def source_lines(servers: Sequence[str], iburst: bool, minpoll: int, maxpoll: int) -> str:
    """chrony ``server`` directives for the configured servers ("host", "host:port", "[v6]:port")."""
    out = ["# Written by the meter's time service from [time] ntp_servers; edits here are overwritten."]
    for entry in servers:
        host, port = entry, None
        if entry.startswith("["):
            host, _, rest = entry[1:].partition("]")
            port = rest[1:] if rest.startswith(":") else None
        elif entry.count(":") == 1:
            host, port = entry.split(":")
        if port is not None and not 1 <= int(port) <= 65535:
            raise ChronyError(f"NTP server {entry!r}: port {port} is out of range 1..65535")
        words = ["server", host]
        if port is not None:
            words += ["port", port]
        if iburst:
            words.append("iburst")
        words += ["minpoll", str(minpoll), "maxpoll", str(max(minpoll, maxpoll))]
        out.append(" ".join(words))
    return "\n".join(out) + "\n"


def write_sources(path: str | Path, text: str) -> bool:
    """Write the sources file atomically; False when it already holds ``text``."""
    path = Path(path)
    try:
        if path.read_text() == text:
            return False
    except OSError:
        pass
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".sources.")
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return True


class Chronyc:
    """Runs chronyc against one chronyd command socket (or host), each call bounded by a timeout."""

    def __init__(self, program: str = "chronyc", socket: str = "", timeout_s: float = CHRONYC_TIMEOUT_S) -> None:
        self.program = program
        self.socket = socket
        self.timeout_s = timeout_s

    def run(self, *args: str) -> str:
        cmd = [self.program, "-n"]
        if self.socket:
            cmd += ["-h", self.socket]
        cmd += list(args)
        try:
            proc = subprocess.run(cmd, capture_output=True, text=True, timeout=self.timeout_s)
        except FileNotFoundError:
            raise ChronyError(f"{self.program}: not found; install chrony (Debian package 'chrony')") from None
        except subprocess.TimeoutExpired:
            raise ChronyError(f"chronyc {' '.join(args)}: no answer from chronyd within {self.timeout_s:g} s "
                              f"(socket {self.socket or 'default'})") from None
        if proc.returncode != 0:
            why = (proc.stdout + proc.stderr).strip().splitlines()
            raise ChronyError(f"chronyc {' '.join(args)} failed: {why[-1] if why else 'exit ' + str(proc.returncode)}")
        return proc.stdout

    def tracking(self) -> Tracking:
        return Tracking.parse(self.run("-c", "tracking"))

    def reload_sources(self) -> None:
        self.run("reload", "sources")

    def settime(self, utc: float) -> str:
        """Give chronyd a manual time sample (chrony parses local time, to the second)."""
        self.run("manual", "on")
        return self.run("settime", time.strftime("%b %d, %Y %H:%M:%S", time.localtime(round(utc)))).strip()
