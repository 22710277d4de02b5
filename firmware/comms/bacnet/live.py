"""The device's objects and their values, worked out from the measurement snapshot only where someone looks.

A client's ReadProperty or ReadPropertyMultiple brings the object it reads up to the latest snapshot first
(``current``, the objects' read hook), and so does a SubscribeCOV before its first notification; once a
second, only the objects a client has subscribed to are refreshed (their COV detection must see each change
stored), and a trend log takes its record's value from the same readings. An object nobody reads or watches
costs nothing between reads: metrology publishes every second whether or not anyone asks.

Each object remembers the state it shows (the snapshot it came from, its staleness, the configuration and
the trend logs' counts): reading it again in the same state stores nothing.
"""
from __future__ import annotations

import asyncio
import math
import time
from typing import Any, Callable, Iterator, Mapping

from firmware.comms.bacnet import objects as bo
from firmware.comms.bacnet.model import Model
from firmware.comms.bacnet.objects import device_instance, device_name, set_reading
from firmware.comms.bacnet.readings import NO_FAULT, Limits, Reading, read_all
from firmware.comms.bacnet.settings import max_power_kw, output_config, rated_current_a, read_settings, system_code
from firmware.comms.bacnet.trendlog import TrendLogs
from firmware.config import Config

# A snapshot not refreshed for this long makes every value report COMMUNICATION_FAILURE (metrology publishes
# once a second).
STALE_AFTER_S = 5.0
# The S4100's "Data Update Rate 1 sec.": how often subscribed objects are refreshed.
REFRESH_INTERVAL_S = 1.0
# With no subscription, the refresh task sleeps until the next trend-log record, at most this long.
IDLE_WAKE_S = 60.0

State = tuple[int, bool, int, int]      # snapshot generation, stale, configuration generation, trend generation


class LiveObjects:
    """The objects' half of ``BacnetDevice``: building them, and their values from the snapshot and the
    configuration."""

    model: Model
    trends: TrendLogs
    sets: list[bo.ObjectSet]
    write: Callable[..., Any]
    values: Mapping[str, Any]
    updated_ns: int
    revenue_locked: bool
    counters: dict[str, int]
    # fetches a newer snapshot into ``update`` before a read (the application's feed); None: only ``update``
    pull: Callable[[], None] | None = None
    # set when the refresh task should look again at once (a new subscription, a write)
    wakeup: asyncio.Event | None = None
    _config: Config
    _config_gen = 0
    _settings: dict[str, float] | None = None
    _values_gen = 0
    _trend_gen = 0
    _shown_stale: bool | None = None      # the staleness the watched objects show (None: not refreshed yet)
    _readings: tuple[tuple[int, bool, int], dict[int, Reading], dict[int, Reading]] | None = None

    @property
    def config(self) -> Config:
        return self._config

    @config.setter
    def config(self, value: Config) -> None:
        self._config = value
        self._config_gen += 1
        self._settings = None

    def settings(self) -> dict[str, float]:
        """AV1-AV11 by setting name, from the configuration (read once per configuration)."""
        if self._settings is None:
            self._settings = read_settings(self.config)
        return self._settings

    # ------------------------------------------------------------------ objects

    def build_objects(self) -> list[Any]:
        """A new set of the device's objects for one application; each is worked out when it is read."""
        cfg, section = self.config, self.config["bacnet"]
        instance = device_instance(cfg)
        from firmware import __version__

        dev = bo.MeterDevice(
            objectIdentifier=("device", instance), objectName=device_name(cfg),
            modelName=self.model.device["model_name"], firmwareRevision=__version__,
            applicationSoftwareVersion=__version__, description=self.model.device["description"],
            location=section.location, maxMaster=section.max_master, maxInfoFrames=section.max_info_frames,
            apduTimeout=int(self.model.device["apdu_timeout_ms"]),
            numberOfApduRetries=int(self.model.device["number_of_apdu_retries"]))
        settings = self.settings()
        ais = {ai.instance: bo.analog_input(ai, self.cov_increment("AI", ai.instance))
               for ai in self.model.analog_inputs}
        avs = {av.instance: bo.analog_value(av, settings[av.setting], self.cov_increment("AV", av.instance))
               for av in self.model.analog_values}
        bis = {bi.instance: bo.binary_input(bi) for bi in self.model.binary_inputs}
        interval = int(settings["subinterval_length"])
        tls = {tl.instance: bo.trend_log(tl, instance, section.trend_log_inputs[tl.instance - 1], interval,
                                         section.trend_log_enabled[tl.instance - 1],
                                         section.trend_log_stop_when_full[tl.instance - 1])
               for tl in self.model.trend_logs}
        objs: list[Any] = [dev, *ais.values(), *avs.values(), *bis.values(), *tls.values()]
        for group in (ais, avs, bis, tls):
            for number, obj in group.items():
                obj._instance = number
        for obj in objs:
            obj._write_hook = self.write     # every WriteProperty of these objects comes to this device
            obj._read_hook = self.current    # and every read brings the object up to date first
        self.sets.append(bo.ObjectSet(dev, ais, avs, bis, tls, objs))
        return objs

    def cov_increment(self, kind: str, instance: int) -> float:
        """COV_Increment of AI or AV ``instance``: the one written ([bacnet] cov_increment), else the
        default (by units for analog inputs)."""
        key = f"{kind}{instance}"
        for entry in self.config["bacnet"].cov_increment:
            if entry.object == key:
                return float(entry.increment)
        if kind == "AI":
            return self.model.cov_increments[self.model.analog_inputs[instance - 1].units]
        return bo.DEFAULT_COV_INCREMENT

    def limits(self) -> Limits:
        s, section = self.settings(), self.config["bacnet"]
        code = system_code(self.config)
        ll = s["system_voltage"]
        ln = ll if code == 10 else ll / (2.0 if code in (11, 12) else math.sqrt(3.0))
        # the current range: the CT's primary rating, or In where that is larger (no CT: ratio 1:1)
        return Limits(code, ln, ll, rated_current_a(self.config), section.phase_loss_voltage / 100.0,
                      section.phase_loss_imbalance / 100.0)

    # ------------------------------------------------------------------ values

    def stale(self, now_ns: int | None = None) -> bool:
        now_ns = time.time_ns() if now_ns is None else now_ns
        return not self.updated_ns or (now_ns - self.updated_ns) / 1e9 > STALE_AFTER_S

    def update(self, values: Mapping[str, Any] | None, updated_ns: int, force: bool = True) -> None:
        """New snapshot values (None: unchanged since the last look). The objects a client subscribed to are
        refreshed now; unless ``force`` (after a write), unchanged values refresh them only when they turn
        stale. Every other object is worked out when it is read."""
        if values is not None:
            self.values = values
            self.updated_ns = updated_ns
            self._values_gen += 1
            locked = values.get("revenue_locked")
            self.revenue_locked = locked is not None and locked == locked and float(locked) >= 0.5
        if force and self.wakeup is not None:
            self.wakeup.set()
        stale = self.stale()
        if values is None and not force and stale == self._shown_stale:
            return
        self._shown_stale = stale
        state = self._state()
        for obj in self.watched():
            self._refresh(obj, state)

    def current(self, obj: Any) -> None:
        """Bring ``obj`` up to the latest snapshot (before a client reads it or subscribes to it)."""
        if self.pull is not None:
            self.pull()
        self._refresh(obj, self._state())

    def watched(self) -> Iterator[Any]:
        """The objects some client has subscribed to (COV), in every application."""
        for objs in self.sets:
            for detection in list(getattr(objs.device._app, "_cov_detections", {}).values()):
                yield detection.obj

    def readings(self) -> tuple[dict[int, Reading], dict[int, Reading]]:
        """(analog inputs, binary inputs) by instance, worked out once per snapshot, staleness and
        configuration."""
        stale = self.stale()
        key = (self._values_gen, stale, self._config_gen)
        if self._readings is None or self._readings[0] != key:
            ais, bis = read_all(self.model, self.values, self.limits(), max_power_kw(self.config), stale,
                                output_config(self.config))
            self._readings = (key, ais, bis)
        return self._readings[1], self._readings[2]

    def _state(self) -> State:
        return self._values_gen, self.stale(), self._config_gen, self._trend_gen

    def _refresh(self, obj: Any, state: State) -> None:
        if obj.__dict__.get("_shown") == state:
            return
        obj.__dict__["_shown"] = state
        number = obj.__dict__.get("_instance")
        if isinstance(obj, bo.MeterAnalogInput):
            reading = self.readings()[0][number]
            set_reading(obj, reading.value, reading.reliability)
        elif isinstance(obj, bo.MeterBinaryInput):
            reading = self.readings()[1][number]
            set_reading(obj, "active" if reading.value else "inactive", reading.reliability)
        elif isinstance(obj, bo.MeterAnalogValue):
            set_reading(obj, self.settings()[self.model.analog_values[number - 1].setting], NO_FAULT)
        elif isinstance(obj, bo.MeterTrendLog):
            store = self.trends[number]
            for attr, value in (("recordCount", store.count()), ("totalRecordCount", store.total()),
                                ("logInterval", int(self.settings()["subinterval_length"]))):
                if getattr(obj, attr) != value:
                    obj.store(attr, value)

    # ------------------------------------------------------------------ trend logs

    def tick(self, now: float) -> None:
        """Log a record on every enabled trend log at each multiple of the log interval (clock-aligned)."""
        slot = self.trends.due(now, self.settings()["subinterval_length"] / 100.0)
        if slot is not None:
            self.log_trends(slot)

    def next_wake_s(self, now: float) -> float:
        """How long the refresh task may sleep: a second while a client is subscribed, else until the next
        trend-log record (at most IDLE_WAKE_S)."""
        if any(True for _ in self.watched()):
            return REFRESH_INTERVAL_S
        if self.settings()["subinterval_length"] <= 0:
            return IDLE_WAKE_S                       # records only on command (AV1 21211)
        if not self.trends.next_log_s:
            return REFRESH_INTERVAL_S                # the first tick sets the next slot
        return min(IDLE_WAKE_S, max(0.0, self.trends.next_log_s - now))

    def log_trends(self, ts: float) -> None:
        if self.pull is not None:
            self.pull()
        section, readings = self.config["bacnet"], self.readings()[0]

        def value_of(instance: int) -> float:
            return float(readings[section.trend_log_inputs[instance - 1]].value)

        self.counters["trend_records"] += self.trends.record(ts, section.trend_log_enabled, value_of)
        self._trend_gen += 1             # the logs' counts changed: shown at the next read
        self._shown_stale = None
