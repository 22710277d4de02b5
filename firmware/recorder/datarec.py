"""Data recorders: up to 16 recorders of up to 16 channels each, in ``data_dir/recorder.db`` (one ``LogStore``
table ``datarec_N`` per recorder, N from 1), configured by ``[[recorders.recorder]]``.

An interval recorder reads the measurement snapshot once a second and keeps, per channel, the mean, highest,
lowest or last 1-s value of each clock-aligned interval; its record is stamped with the interval's end. A
triggered recorder records when an event of its kind ends (channels ``event.FIELD`` are the event's own values,
e.g. ``event.duration_s``) or when a 3-s, 10-min or 2-h aggregate closes (the ``*_3s``/``*_10min``/``*_2h``
points of firmware/points/pq.toml come from that aggregate); any other channel is its latest 1-s value. A
record holds ``data``: channel name to value (NaN where there was none).

A recorder whose configuration changed since its data were written starts empty (SPEC §5): the CRC of its
configuration is kept beside the data.
"""
from __future__ import annotations

import json
import math
import re
import zlib
from pathlib import Path
from typing import Any, Callable, Mapping

import numpy as np

from firmware.points import points_by_name
from firmware.recorder.store import RECORDER_DB
from firmware.storage.logstore import LogStore
from hal.errors import ConfigError
from metrology.events import KINDS, VOLTAGE_KINDS
from metrology.intervals import Interval
from metrology.pqpublish import aggregate_points

_CHANNEL = re.compile(r"(?P<name>[a-z][a-z0-9_.]*)(\[(?P<k>\d+)\])?")
EVENT_TRIGGERS = {**{kind: (kind,) for kind in KINDS}, "disturbance": VOLTAGE_KINDS}
AGGREGATE_TRIGGERS = ("3s", "10min", "2h")
Values = Mapping[str, Any]


class Recorder:
    def __init__(self, number: int, cfg: Any, store: LogStore) -> None:
        self.number, self.cfg, self.store = number, cfg, store
        self.channels = tuple(cfg.channels)
        self.parsed = [_parse(c) for c in self.channels]
        self.key: int | None = None          # the open interval (interval recorders)
        self.acc = np.zeros(len(self.channels))
        self.n = np.zeros(len(self.channels))

    def describe(self) -> dict[str, Any]:
        c = self.cfg
        return {"recorder": self.number, "name": c.name, "enabled": c.enabled, "trigger": c.trigger,
                "interval": c.interval if c.trigger == "interval" else None, "stat": c.stat,
                "channels": list(self.channels), "depth": c.depth, "mode": c.mode, "records": self.store.count()}

    def sample(self, now: float, values: Values) -> None:
        """One 1-s reading of the snapshot; closes the interval it ends."""
        key = int(now // self.cfg.interval)
        if self.key is not None and key != self.key:
            self._close((self.key + 1) * self.cfg.interval)
        self.key = key
        x = np.array([_value(values, name, k) for name, k in self.parsed])
        ok = ~np.isnan(x)
        stat = self.cfg.stat
        if stat == "mean":
            self.acc[ok] += x[ok]
        elif stat == "high":
            self.acc[ok] = np.where(self.n[ok] > 0, np.maximum(self.acc[ok], x[ok]), x[ok])
        elif stat == "low":
            self.acc[ok] = np.where(self.n[ok] > 0, np.minimum(self.acc[ok], x[ok]), x[ok])
        else:
            self.acc[ok] = x[ok]
        self.n[ok] += 1

    def _close(self, end_ts: float) -> None:
        out = self.acc / np.maximum(self.n, 1) if self.cfg.stat == "mean" else self.acc.copy()
        out[self.n == 0] = math.nan
        self.record(end_ts, dict(zip(self.channels, out.tolist())))
        self.acc[:] = 0.0
        self.n[:] = 0.0

    def record(self, ts: float, data: dict[str, float]) -> None:
        self.store.append(ts, {"data": data})


class DataRecorders:
    def __init__(self, data_dir: str | Path, section: Any) -> None:
        self.recorders: list[Recorder] = []
        points = points_by_name()
        for number, cfg in enumerate(section.recorder, start=1):
            _check(number, cfg, points)
            store = LogStore(Path(data_dir) / RECORDER_DB, f"datarec_{number}", {"data": "JSON"}, cfg.depth, cfg.mode)
            crc = zlib.crc32(json.dumps(cfg.to_dict(), sort_keys=True, default=list).encode())
            store.sql("CREATE TABLE IF NOT EXISTS datarec_config (recorder INTEGER PRIMARY KEY, crc INTEGER NOT NULL)")
            old = store.sql("SELECT crc FROM datarec_config WHERE recorder = ?", (number,))
            if old and int(old[0][0]) != crc:
                store.clear()            # a configuration change clears that recorder's data (SPEC §5)
            store.sql("INSERT INTO datarec_config (recorder, crc) VALUES (?, ?) ON CONFLICT(recorder) DO UPDATE "
                      "SET crc = excluded.crc", (number, crc))
            self.recorders.append(Recorder(number, cfg, store))
        self._next_s = 0.0

    def close(self) -> None:
        for r in self.recorders:
            r.store.close()

    def poll(self, now: float, read: Callable[[], Values | None]) -> None:
        """Called often; samples the snapshot once a second for the interval recorders."""
        if now < self._next_s:
            return
        self._next_s = math.floor(now) + 1.0
        interval = [r for r in self.recorders if r.cfg.enabled and r.cfg.trigger == "interval"]
        if not interval:
            return
        values = read()
        if values is None:
            return
        for r in interval:
            r.sample(now, values)

    def on_event(self, meta: Mapping[str, Any], latest: Values | None = None) -> None:
        for r in self.recorders:
            if r.cfg.enabled and meta["kind"] in EVENT_TRIGGERS.get(r.cfg.trigger, ()):
                data = {ch: _value(meta, name[6:], k) if name.startswith("event.") else _value(latest or {}, name, k)
                        for ch, (name, k) in zip(r.channels, r.parsed)}
                r.record(int(meta["end_ns"]) / 1e9, data)

    def on_aggregate(self, meta: Mapping[str, Any], arrays: Mapping[str, np.ndarray],
                     latest: Values | None = None) -> None:
        wanted = [r for r in self.recorders if r.cfg.enabled and r.cfg.trigger == meta["kind"]]
        if not wanted:
            return
        item = Interval(meta["kind"], int(meta["start_ns"]), int(meta["end_ns"]), float(meta["duration_s"]),
                        int(meta["cycles"]), dict(arrays), bool(meta["flagged"]), bool(meta["gap"]))
        points = {**(latest or {}), **aggregate_points(item)}
        for r in wanted:
            r.record(item.end_ns / 1e9, {ch: _value(points, name, k) for ch, (name, k) in zip(r.channels, r.parsed)})

    def describe(self) -> list[dict[str, Any]]:
        return [r.describe() for r in self.recorders]

    def read(self, number: int, since_ts: float | None, until_ts: float | None, limit: int) -> list[dict[str, Any]]:
        if not 1 <= number <= len(self.recorders):
            raise ConfigError(f"data recorder {number} does not exist; recorders 1..{len(self.recorders)} are "
                              "configured ([[recorders.recorder]])")
        rows = self.recorders[number - 1].store.read(since_ts=since_ts)
        return [r for r in rows if until_ts is None or r["ts"] <= until_ts][:limit]


def _parse(channel: str) -> tuple[str, int | None]:
    m = _CHANNEL.fullmatch(channel)
    if m is None:
        raise ConfigError(f"data recorder channel {channel!r} is not a point name or event field")
    return m["name"], int(m["k"]) if m["k"] is not None else None


def _value(values: Mapping[str, Any], name: str, k: int | None) -> float:
    v = values.get(name)
    if v is None:
        return math.nan
    try:
        if k is not None:
            a = np.asarray(v, dtype=np.float64).reshape(-1)
            return float(a[k]) if k < a.size else math.nan
        return float(v)
    except (TypeError, ValueError):
        return math.nan


def check(config: Any) -> None:
    """The data recorders' channels as the recorder service checks them at start (``firmware.config.checks``)."""
    points = points_by_name()
    for number, cfg in enumerate(config["recorders"].recorder, start=1):
        _check(number, cfg, points)


def _check(number: int, cfg: Any, points: Mapping[str, Any]) -> None:
    """Every channel names a point (with an element inside its size) or, for an event trigger, an event field."""
    where = f"[[recorders.recorder]] {number} ({cfg.name})"
    for channel in cfg.channels:
        name, k = _parse(channel)
        if name.startswith("event."):
            if cfg.trigger not in EVENT_TRIGGERS:
                raise ConfigError(f"{where}: channel {channel!r} is an event field but the recorder's trigger is "
                                  f"{cfg.trigger!r}; use it with an event trigger ({', '.join(EVENT_TRIGGERS)})")
            continue
        point = points.get(name)
        if point is None:
            raise ConfigError(f"{where}: channel {channel!r} is not a point of the point map (firmware/points); "
                              "see docs/modbus.md for the names")
        if k is not None and k >= point.size:
            raise ConfigError(f"{where}: channel {channel!r}: {name} has {point.size} elements")
        if k is None and point.size > 1:
            raise ConfigError(f"{where}: channel {channel!r} is an array of {point.size}; name one element, "
                              f"e.g. {name}[3]")
