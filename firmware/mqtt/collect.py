"""What the MQTT service queues: readings and energy registers from the measurement snapshot, interval
records and events from the log stores, each turned into (ts, topic, body, qos, retain) for the outbox.

Readings: the newest second of the measurement snapshot, every ``readings_interval``, when the snapshot
has a new publish (a meter that stopped metering sends none). Energy: the energy registers of basic.toml
every ``energy_interval``. Intervals and events: each load-profile record (``interval`` records are
intervals, the others events), each time event and each record of the meter's event log (PQ events, alarms,
security, configuration changes), once, in record order; their read positions are
stored in the outbox with the messages (``Outbox.put``), so a record is queued exactly once.
"""
from __future__ import annotations

import math
import time
from functools import lru_cache
from pathlib import Path
from typing import Any, Callable

from firmware import feeds
from firmware.ipc.snapshot import Snapshot
from firmware.mqtt import topics
from firmware.points import load_points
from hal.errors import IPCError

FEED_BATCH = 500
Queued = tuple[float, str, str, int, bool]


@lru_cache(maxsize=1)
def energy_points() -> tuple[str, ...]:
    """The energy registers every protocol publishes (the ``total`` points of basic.toml)."""
    return tuple(p.name for p in load_points() if p.kind == "total" and p.source == "basic.toml")


class Collector:
    def __init__(self, config: Any, data_dir: str | Path, snapshot_name: str,
                 cursor: Callable[[str], float], serial: str | None = None) -> None:
        m = config["mqtt"]
        self.m = m
        self.fmt = m.payload
        self.meter = topics.meter_id(serial or config["meter"].serial_number)
        self.snapshot_name = snapshot_name
        self.snapshot: Snapshot | None = None
        self.feeds = {"lp": feeds.load_profile(data_dir), "time": feeds.time_events(data_dir),
                      "events": feeds.event_log(data_dir)}
        self.cursors = {name: int(cursor(name)) for name in self.feeds}
        self.last_count = -1
        self.next_readings = 0.0
        self.next_energy = 0.0
        self.counts = {"readings": 0, "energy": 0, "intervals": 0, "events": 0}

    def _topic(self, kind: str) -> str:
        return topics.topic(self.fmt, self.m.topic_prefix, self.meter, kind)

    def _msg(self, kind: str, ts: float, values: dict[str, Any], extra: dict[str, Any] | None = None) -> Queued:
        self.counts[kind] += 1
        return (ts, self._topic(kind), topics.body(self.fmt, kind, ts, values, extra), self.m.qos, False)

    def _read_snapshot(self) -> dict[str, Any] | None:
        if self.snapshot is None:
            try:
                self.snapshot = Snapshot.attach(self.snapshot_name)
            except (IPCError, OSError, ValueError):
                return None
        return self.snapshot.read()

    def collect(self, mono: float | None = None) -> tuple[list[Queued], dict[str, float]]:
        """Messages due now, and the feed cursors to store with them."""
        mono = time.monotonic() if mono is None else mono
        out: list[Queued] = []
        if (self.m.readings and mono >= self.next_readings) or (self.m.energy and mono >= self.next_energy):
            snap = self._read_snapshot()
            if snap is not None and snap["_count"] != self.last_count and snap["_count"] > 0:
                ts = snap["_updated_ns"] / 1e9
                if self.m.readings and mono >= self.next_readings:
                    self.next_readings = mono + self.m.readings_interval
                    self.last_count = snap["_count"]
                    out.append(self._msg("readings", ts, {k: snap.get(k, math.nan) for k in self.m.readings_points}))
                if self.m.energy and mono >= self.next_energy:
                    self.next_energy = mono + self.m.energy_interval
                    out.append(self._msg("energy", ts, {k: snap[k] for k in energy_points() if k in snap}))
        moved: dict[str, float] = {}
        if self.m.intervals or self.m.events:
            for rec in self.feeds["lp"].read(self.cursors["lp"], FEED_BATCH):
                self.cursors["lp"] = moved["lp"] = rec["id"]
                kind = "intervals" if rec["kind"] == feeds.LP_INTERVAL_KIND else "events"
                if getattr(self.m, kind):
                    out.append(self._msg(kind, rec["ts"], {"data": rec["data"]},
                                         {"record": rec["id"], "kind": rec["kind"], "event": rec["event"] or None,
                                          "start": rec["start"], "end": rec["end_ts"], "status": rec["status"],
                                          "info": rec["info"]}))
        if self.m.events:
            for rec in self.feeds["time"].read(self.cursors["time"], FEED_BATCH):
                self.cursors["time"] = moved["time"] = rec["id"]
                out.append(self._msg("events", rec["ts"], {"offset": rec["offset"]},
                                     {"record": rec["id"], "kind": "time", "event": rec["event"],
                                      "info": rec["info"]}))
            for rec in self.feeds["events"].read(self.cursors["events"], FEED_BATCH):
                self.cursors["events"] = moved["events"] = rec["id"]
                out.append(self._msg("events", rec["ts"], {"priority": rec["priority"]},
                                     {"record": rec["id"], "kind": "event_log", "event": rec["cause"],
                                      "info": {"source": rec["source"], "effect": rec["effect"],
                                               "user": rec["user"], **(rec["detail"] or {})}}))
        return out, moved

    def close(self) -> None:
        for feed in self.feeds.values():
            feed.close()
        if self.snapshot is not None:
            self.snapshot.close()
