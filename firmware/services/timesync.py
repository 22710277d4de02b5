"""The time service: chrony's sources from the configuration, time quality into the ``time`` snapshot,
time events into the time log, protocol time sets by priority.

Every ``[time] poll`` it reads ``chronyc -c tracking``; ``firmware.timesync.quality`` turns the state into
the quality flag and ``time_synced`` (the metrology service copies that into the measurement snapshot, so
Modbus reads it at 4002) and successive states into events: sync, degraded, unsync, step, slew (at least
``log_threshold``), source change, leap second, and a jump of the system clock itself. Events go to
``data_dir/time.db`` (circular) and to the log. ``time.set`` (for the protocols' time sync: Modbus,
BACnet, or by hand) goes to chrony's manual reference when ``[time] priority`` allows it.
"""
from __future__ import annotations

import sys
import time
from typing import Any

from firmware.config.board import load_board
from firmware.ipc.snapshot import Snapshot
from firmware.service import HEARTBEAT_INTERVAL_S, Service, command, main
from firmware.storage.logstore import LogStore
from firmware.timesync import EVENTS_COLUMNS, EVENTS_DB, EVENTS_TABLE, LAYOUT, SNAPSHOT_NAME
from firmware.timesync.chrony import Chronyc, ChronyError, Tracking, source_lines, write_sources
from firmware.timesync.quality import QUALITY_NAMES, SYNCHRONISED, Event, Limits, Watch, may_set, snapshot_values
from hal.errors import MeterError

SOURCES_RETRY_S = 30.0


class TimeService(Service):
    name = "time"

    def setup(self) -> None:
        self.cfg = self.config["time"]
        self.chrony = Chronyc(self.cfg.chronyc, self.cfg.chrony_socket)
        self.limits = Limits.from_config(self.cfg)
        self.watch = Watch(self.limits)
        self.events = LogStore(self.ctx.data_dir / EVENTS_DB, EVENTS_TABLE, EVENTS_COLUMNS, self.cfg.event_depth)
        self.snapshot = Snapshot.create(self.ctx.shm_name(SNAPSHOT_NAME), LAYOUT)
        self.tracking: Tracking | None = None
        self.quality = 0
        self.chrony_error = ""
        # A PC running the simulated board has no reason to run chronyd: its absence there is information
        self.simulated = load_board(self.ctx.board_path).simulated
        self.counters = {"polls": 0, "events": 0, "chrony_errors": 0, "sets": 0, "sets_refused": 0}
        self._wall = time.time() - time.monotonic()
        self._next_poll = 0.0
        self._sources_due = 0.0 if self.cfg.ntp_servers else None
        self.endpoints = [f"shm:{self.ctx.shm_name(SNAPSHOT_NAME)}", f"chrony:{self.cfg.chrony_socket}"]
        if self._sources_due is not None:
            self._write_sources()

    def run(self) -> None:
        while not self.stopping.is_set():
            now = time.monotonic()
            if self._sources_due is not None and now >= self._sources_due:
                self._write_sources()
            if now >= self._next_poll:
                self._next_poll = now + self.cfg.poll
                self.poll()
            self.heartbeat(True, quality=QUALITY_NAMES[self.quality], **self.counters)
            self.stopping.wait(min(HEARTBEAT_INTERVAL_S, max(self._next_poll - time.monotonic(), 0.0)))

    def _write_sources(self) -> None:
        text = source_lines(self.cfg.ntp_servers, self.cfg.iburst, self.cfg.minpoll, self.cfg.maxpoll)
        try:
            changed = write_sources(self.cfg.chrony_sources_file, text)
            if changed:
                self.chrony.reload_sources()
                self.log.info("chrony sources written to %s and reloaded: %s", self.cfg.chrony_sources_file,
                              ", ".join(self.cfg.ntp_servers))
            self._sources_due = None
        except (OSError, ChronyError) as exc:
            self.log.error("could not configure chrony's sources (%s): %s; retrying in %.0f s",
                           self.cfg.chrony_sources_file, exc, SOURCES_RETRY_S)
            self._sources_due = time.monotonic() + SOURCES_RETRY_S

    def poll(self) -> None:
        self.counters["polls"] += 1
        try:
            self.tracking = self.chrony.tracking()
            if self.chrony_error:
                self.log.info("chrony answers again")
            self.chrony_error = ""
        except ChronyError as exc:
            self.counters["chrony_errors"] += 1
            if str(exc) != self.chrony_error:
                say = self.log.info if self.simulated else self.log.warning
                say("%s: time_synced stays 0 until chronyd answers (Debian package chrony; docs/time.md)", exc)
            self.chrony_error = str(exc)
            self.tracking = None
        now = time.time()
        wall = now - time.monotonic()
        jump, self._wall = wall - self._wall, wall
        self.quality, events = self.watch.update(self.tracking, now, jump)
        self.snapshot.publish(snapshot_values(self.tracking, self.quality, now))
        for ev in events:
            self._record(now, ev)

    def _record(self, now: float, ev: Event) -> None:
        self.counters["events"] += 1
        self.events.append(now, {"event": ev.event, "offset": ev.offset, "info": ev.info})
        level = self.log.warning if ev.event in ("step", "unsync", "degraded", "clock_set",
                                                 "time_set_refused") else self.log.info
        level("time event %s: offset %+.6f s %s", ev.event, ev.offset, ev.info)

    def teardown(self) -> None:
        for name in ("snapshot", "events"):
            obj = getattr(self, name, None)
            if obj is not None:
                obj.close()

    def dump_config(self) -> dict[str, Any]:
        return {"quality": QUALITY_NAMES.get(getattr(self, "quality", 0)), **getattr(self, "counters", {})}

    @command("status")
    def cmd_status(self, user: str = "") -> dict[str, Any]:
        t = self.tracking
        return {"quality": QUALITY_NAMES[self.quality], "time_synced": self.quality == SYNCHRONISED,
                "chrony_error": self.chrony_error or None, "tracking": t.__dict__ if t else None}

    @command("events")
    def cmd_events(self, user: str = "", since_id: int = 0, limit: int = 100) -> list[dict[str, Any]]:
        return self.events.read(since_id=int(since_id), limit=min(int(limit), 1000))

    @command("set")
    def cmd_set(self, user: str = "", utc: float | None = None, source: str = "protocol") -> dict[str, Any]:
        """A time set from a protocol's time sync (Modbus, BACnet) or by hand, by ``[time] priority``."""
        if not isinstance(utc, (int, float)) or not 946684800 <= float(utc) <= 7258118400:
            raise MeterError(f"time.set: 'utc' must be seconds since 1970 between 2000 and 2200, got {utc!r}")
        now = time.time()
        synced_by = "ntp" if self.quality == SYNCHRONISED else None
        ok, why = may_set(self.cfg.priority, source, synced_by)
        info = {"source": source, "user": user, "utc": float(utc)}
        if not ok:
            self.counters["sets_refused"] += 1
            self._record(now, Event("time_set_refused", float(utc) - now, {**info, "reason": why}))
            raise MeterError(f"time.set refused: {why}")
        diff = float(utc) - now
        if abs(diff) < self.cfg.protocol_set_min_step:
            return {"accepted": True, "applied": False, "offset": diff}
        try:
            answer = self.chrony.settime(float(utc))
        except ChronyError as exc:
            raise MeterError(f"time.set: chrony refused the manual time: {exc}") from None
        self.counters["sets"] += 1
        self._record(now, Event("time_set", diff, {**info, "chrony": answer}))
        return {"accepted": True, "applied": True, "offset": diff, "chrony": answer}


if __name__ == "__main__":
    sys.exit(main(TimeService))
