"""What `meter status` and the status page show of the running meter: each service, whether the meter meters
(the measurement snapshot is fresh), samples lost, the meter's state, security warnings and unread events.
Read from the supervisor's own records, on the control socket's threads."""
from __future__ import annotations

import logging
import os
import time
from typing import Any

from firmware import __version__
from firmware.config.store import file_version
from firmware.health import meter_state
from firmware.ipc.names import MEASUREMENTS, shm_name
from firmware.storage.eventlog import EventLog
from hal.errors import IPCError, MeterError

log = logging.getLogger("supervisor")

METERING_STALE_S = 5.0    # measurement snapshot older than this: not metering


class MeterReport:
    def __init__(self, supervisor: Any) -> None:
        """``supervisor``: a ``firmware.supervisor.loop.Supervisor`` (its children, sample loss, configuration,
        control server and shared-memory instance)."""
        self.supervisor = supervisor
        self._events: EventLog | None = None      # read for its unread counter only

    def status(self) -> dict[str, Any]:
        sv = self.supervisor
        services = {name: c.status() for name, c in sv.children.items()}
        essential_ok = all(c.state == "running" for c in sv.children.values() if c.spec.essential)
        all_up = all(c.state == "running" for c in sv.children.values())
        metering = self._metering()
        # healthy: every service running and metering (what an upgrade waits for before it commits);
        # state adds whether the meter is losing samples
        healthy = all_up and essential_ok and metering is not False
        loss = sv.loss.summary(time.monotonic())
        return {"state": meter_state(healthy, loss["losing_samples"]), "healthy": healthy, "metering": metering,
                "lost_frames_per_min": loss["lost_frames_per_min"], "overruns_per_min": loss["overruns_per_min"],
                "last_gap": loss["last_gap"], "version": __version__, "config_version": self._config_version(),
                "config_started_version": sv.config.version,
                "pid": os.getpid(), "uptime_s": round(time.time() - sv.started, 1), "run_dir": str(sv.run_dir),
                "control_socket": str(sv.control.path), "services": services,
                "security_checklist": self._checklist(), "events_unread": self._events_unread()}

    def _config_version(self) -> int:
        """The configuration file's version now (changes saved while running count); the started one without a file."""
        version = file_version(self.supervisor.config_path)
        return self.supervisor.config.version if version is None else version

    def _events_unread(self) -> int | None:
        """The event log's unread counter (None when the log cannot be read)."""
        try:
            if self._events is None:
                ev = self.supervisor.config["events"]
                self._events = EventLog(self.supervisor.config.meter.data_dir, ev.cutoff, ev.depth)
            return self._events.unread()
        except MeterError as exc:
            log.warning("event log unread counter: %s", exc)
            return None

    def _checklist(self) -> list[str]:
        """Security warnings (a factory password still in use), for `meter status` and the status page."""
        users = getattr(self.supervisor.control.gate.policy, "users", None)
        try:
            return users.checklist() if users is not None else []
        except MeterError as exc:
            return [f"user accounts cannot be read: {exc}"]

    def _metering(self) -> bool | None:
        """True if the measurement snapshot is fresh, False if stale, None when no metrology service runs."""
        if "metrology" not in self.supervisor.children:
            return None
        try:
            from firmware.ipc.snapshot import Snapshot

            snap = Snapshot.attach(shm_name(self.supervisor.instance, MEASUREMENTS))
            try:
                _, updated_ns, count = snap.read_array()
            finally:
                snap.close()
        except (IPCError, OSError):
            return False
        return count > 0 and (time.time_ns() - updated_ns) / 1e9 < METERING_STALE_S
