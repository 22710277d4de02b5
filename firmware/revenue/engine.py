"""The revenue-register engine: what a utility bills from, fed once per second, never lost.

The metrology service owns one ``RevenueEngine`` and calls ``on_second`` with each second's
``EnergyIncrement`` (and its loss-compensated twin), the 1-s measurements and the clock time;
``flush()`` on SIGTERM or the power-fail input; ``commands()`` for the control socket; ``values()``
for the measurement snapshot. Control commands arrive on other threads, so every entry point holds
one lock.

Per second: TOU rate from local time -> season change, previous hour/day and scheduled BPR (what
ends at the start of the second ends before its energy) -> energy into the billing (or, in test
mode, the test) registers, total and rate, and conditional energy -> demand integrals ->
subinterval closures, peaks -> min/max/average, incremental energy -> self-reads -> load profile
-> persist when due. Everything registered is written through a
``RecordStore`` (A/B slots, sequence, CRC, fsync) every ``persist_interval`` and at once on flush,
so a sudden loss costs at most one persist interval and a clean stop costs nothing.
"""
from __future__ import annotations

import json
import logging
import threading
import time
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from firmware import __version__
from firmware.revenue.bank import Bank
from firmware.revenue.commands import RevenueCommands
from firmware.revenue.demandset import demand_integrals
from firmware.revenue.inputs import InputState, LockSource
from firmware.revenue.loadprofile import LoadProfile
from firmware.revenue.settings import RevenueSettings
from firmware.storage.eventlog import Event, EventLog
from firmware.storage.logstore import LogStore
from firmware.storage.records import RecordStore
from firmware.timesync.quality import DEGRADED, SYNCHRONISED
from metrology.energy import EnergyIncrement
from metrology.registers import QUANTITIES, UNCOMP, EnergyBank, IncrementalEnergy, MinMaxAvg, PeriodDelta, self_read_due
from metrology.registers import average_pf as pf_of_energy
from metrology.tou import TouState

log = logging.getLogger("revenue")
REVENUE_SUBDIR = "revenue"       # under data_dir: the register slots and REVENUE_DB
REVENUE_DB = "revenue.db"        # log store: load profile, revenue audit, self-reads (read by mqtt and email)

STATE_FORMAT = 1
TIME_SET_TOLERANCE_S = 2.0     # a clock step larger than this between two seconds is a time set
OUTAGE_MIN_S = 2.0             # a gap in registration longer than this on start-up is an outage
SELF_READ_DEPTH = 96           # JEM L804
AUDIT_DEPTH = 5000             # SPEC §5: event log depth
# Priorities of the audited actions in the meter's event log (ION bands: 192+ high, 128+ medium, 64+ low):
# what clears or overwrites billed energy is high, the routine billing actions medium.
AUDIT_EVENT_PRIORITY = {"energy_reset": 192, "preset": 192, "test_mode_enter": 160, "test_mode_exit": 160}
AUDIT_EVENT_PRIORITY_DEFAULT = 128
AUDIT_REFUSED_PRIORITY = 128   # a refused attempt (revenue lock, reset lockout) is worth a look too
MINMAX = ("v_a", "v_b", "v_c", "i_a", "i_b", "i_c", "p", "q", "s", "pf", "freq")
_MINMAX_SRC = (("v_ln", 0), ("v_ln", 1), ("v_ln", 2), ("i", 0), ("i", 1), ("i", 2), ("p", 3), ("q", 3),
               ("s", 3), ("pf", 3), ("freq", 0))


class RevenueEngine:
    def __init__(self, settings: RevenueSettings, data_dir: str | Path, lock: LockSource | None = None,
                 clock: Any = time, events: EventLog | None = None) -> None:
        self.s = settings
        self.dir = Path(data_dir) / REVENUE_SUBDIR
        self.lock_source: LockSource = lock or (lambda: False)
        self.clock = clock                          # wall clock for command time stamps only
        self.mutex = threading.RLock()
        self.records = RecordStore(self.dir, "registers")
        self.audit = LogStore(self.dir / REVENUE_DB, "revenue_audit",
                              {"user": "TEXT", "action": "TEXT", "args": "JSON", "accepted": "INTEGER",
                               "reason": "TEXT"}, AUDIT_DEPTH)
        # every audited action also goes to the meter's event log, so one log tells what happened to the meter
        self.events = events if events is not None else EventLog(data_dir)
        self.self_reads = LogStore(self.dir / REVENUE_DB, "self_read",
                                   {"trigger": "TEXT", "registers": "JSON"}, SELF_READ_DEPTH)
        self.lp = LoadProfile(self.dir / REVENUE_DB, settings.lp_channels, settings.lp_interval_s,
                              settings.lp_depth)
        self.billing = Bank(settings)
        self.test: Bank | None = None
        self.conditional = EnergyBank()
        self.prev_hour = PeriodDelta(len(QUANTITIES))
        self.prev_day = PeriodDelta(len(QUANTITIES))
        self.minmax = MinMaxAvg(MINMAX)
        start, end, step = settings.incremental
        self.incremental = IncrementalEnergy(len(QUANTITIES), start, end, step) if step else None
        self.snapshots: dict[str, dict[str, Any] | None] = {"bpr": None, "season": None, "freeze": None}
        # "increments": energy increments registered (one a second; a second split by a sample gap comes
        # in parts with the same time), so a record and a reading of the registers can be matched exactly
        self.counters = {"bpr": 0, "demand_reset": 0, "freeze": 0, "energy_reset": 0, "preset": 0, "increments": 0}
        self.last_reset_utc = -1e18       # last peak-demand or billing-period reset (lockout)
        self.last_bpr_key: str | None = None
        self.season: int | None = None
        self.last_utc: float | None = None
        self.last_mono: float | None = None
        self.last_local: Any = None
        self.dst: bool | None = None
        self.started_utc: float | None = None
        self.inputs = InputState()
        self.tou: TouState | None = None
        self.test_entered = 0.0
        self.test_activity = 0.0
        self.last_saved = -1e18
        self.saves = 0
        self.persisted_utc: float | None = None     # last_utc of the state held by the newest record
        self.status_bits = 0
        self.paths_differ = False       # the two energy paths differ beyond the accuracy class (gapfill)
        self.pending_config_event = False
        self._lp_reconfigure = False
        self.restored_sequence = 0
        self.pending_firmware: dict[str, str] | None = None
        self.time_synced_once = False   # lost_time_sync: the clock was synchronised since start, and is not
        self._restore()
        self.cmd = RevenueCommands(self)

    def commands(self) -> dict[str, Any]:
        """Control commands, served by the owning service as ``<service>.<name>``."""
        return self.cmd.table()

    # ------------------------------------------------------------------ persistence

    def state(self) -> dict[str, Any]:
        return {
            "format": STATE_FORMAT, "signature": self.s.signature(), "lp_signature": self.s.lp_signature(),
            "last_utc": self.last_utc, "billing": self.billing.state(), "conditional": self.conditional.state(),
            "prev_hour": self.prev_hour.state(), "prev_day": self.prev_day.state(), "minmax": self.minmax.state(),
            "incremental": self.incremental.state() if self.incremental else None, "snapshots": self.snapshots,
            "counters": self.counters, "last_reset_utc": self.last_reset_utc, "last_bpr_key": self.last_bpr_key,
            "season": self.season, "dst": self.dst, "lp": self.lp.state(), "firmware": __version__,
        }

    def _restore(self) -> None:
        record = self.records.load()
        for slot, why in self.records.rejected.items():
            log.warning("revenue record slot %s rejected: %s", slot, why)
            self.status_bits |= STATUS_BITS["general_failure"]      # a persisted record failed its check
        if record is None:
            self.pending_config_event = False
            return
        st = json.loads(record.payload)
        self.billing.restore(st["billing"])
        self.conditional = EnergyBank.from_state(st.get("conditional", []))
        self.prev_hour.restore(st.get("prev_hour", {}))
        self.prev_day.restore(st.get("prev_day", {}))
        self.minmax.restore(st.get("minmax", {}))
        if self.incremental and st.get("incremental"):
            self.incremental.restore(st["incremental"])
        self.snapshots.update(st.get("snapshots", {}))
        self.counters.update(st.get("counters", {}))
        self.last_reset_utc = float(st.get("last_reset_utc", -1e18))
        self.last_bpr_key = st.get("last_bpr_key")
        self.season, self.dst = st.get("season"), st.get("dst")
        self.persisted_utc = self.last_utc = st.get("last_utc")
        if st.get("lp_signature") == self.s.lp_signature():
            self.lp.restore(st.get("lp", {}))
            self.pending_config_event = st.get("signature") != self.s.signature()
        else:
            self.pending_config_event = True
            self._lp_reconfigure = True
        self.restored_sequence = record.sequence
        if st.get("firmware", __version__) != __version__:
            # another firmware wrote the registers: the bit and a load-profile event (with both versions)
            self.status_bits |= STATUS_BITS["firmware_change"]
            self.pending_firmware = {"old": st["firmware"], "new": __version__}

    def save(self) -> None:
        """Write every register now (A/B record, fsync'd)."""
        with self.mutex:
            payload = json.dumps(self.state(), separators=(",", ":")).encode()
            self.records.save(payload)
            self.persisted_utc = self.last_utc
            self.saves += 1

    def flush(self, reason: str = "flush") -> None:
        """SIGTERM or power fail: persist at once; a power failure also ends test mode (JEM L2064)."""
        with self.mutex:
            if reason == "power_fail" and self.test is not None:
                self.exit_test(self.last_utc or 0.0, "power loss")
            self.save()
        log.info("revenue registers persisted (%s)", reason)

    def values(self) -> dict[str, Any]:
        """Point name -> value for the measurement snapshot (``firmware.revenue.publish``)."""
        from firmware.revenue.publish import values
        return values(self)

    def close(self) -> None:
        with self.mutex:
            self.lp.close()
            self.audit.close()
            self.events.close()
            self.self_reads.close()

    # ------------------------------------------------------------------ per second

    def on_second(self, inc: EnergyIncrement, comp: EnergyIncrement | None = None,
                  values: Mapping[str, Any] | None = None, now_utc: float | None = None,
                  mono_s: float | None = None, inputs: InputState | None = None) -> None:
        """Register one second of energy; ``now_utc`` is the time at the end of the increment."""
        values = raw_values(values or {})
        if now_utc is None:
            now_utc = inc.start_ns / 1e9 + max(inc.duration_s + inc.gap_s, 1.0)
        with self.mutex:
            if inputs is not None:
                self.inputs = inputs
            t = now_utc - 0.5                       # the middle of the second being registered
            tz = self.s.timezone
            t_std = tz.standard_s(t)
            local = tz.local(t)
            self._time_checks(now_utc, mono_s, t_std)
            self.tou = self.s.calendar.state(local, self.inputs.tou_override)
            rate = self.tou.rate if self.s.tou_enabled else None
            # cold-load pickup: no peak from a window that began before the deferral ended
            settle = self.s.deferral_s + (self.s.interval_s if self.s.deferral_s and self.s.method != "thermal" else 0)
            peaks_ok = self.started_utc is None or now_utc - self.started_utc >= settle
            # What ends at the start of this second ends before its energy: the demand subinterval, then the
            # season, hour, day and scheduled billing period (whose snapshots include that subinterval).
            if self.test is not None:
                self.test.demand.close_due(t_std, t, rate, True)
            closed = self.billing.demand.close_due(t_std, t, rate, peaks_ok)
            self._periods(local, t)
            bpr_key = self.s.bpr_schedule.due(self.last_local, local, self.last_bpr_key) \
                if self.last_local is not None else None
            if bpr_key:
                self.billing_period_reset(t, "schedule", "schedule")
                self.last_bpr_key = bpr_key
            self._accumulate(inc, comp, t, rate, peaks_ok)
            row = np.array([float(np.asarray(values[k]).reshape(-1)[i]) if k in values else np.nan
                            for k, i in _MINMAX_SRC])
            self.minmax.update(row, t)
            if self.incremental is not None and self.test is None:
                self.incremental.add(local, np.array([getattr(inc, q)[3] for q in QUANTITIES]))
            if self.last_local is not None:
                for trig in self_read_due(self.s.self_read_triggers, self.last_local, local, closed, False):
                    self._self_read(trig, t)
            self._status_sources()
            lp_index = self.lp.index
            self.lp.add(inc, comp, values, self.inputs.pulses, self.inputs.contacts, self.status_word(), t_std, t)
            if lp_index is not None and self.lp.index != lp_index:
                self.status_bits = 0     # event bits last at least one load-profile interval (JEM L2545)
            self._flag_interval(inc)
            if self.test is not None and now_utc - self.test_activity >= self.s.test_mode_timeout_s:
                self.exit_test(now_utc, "inactivity")
            self.last_local = local
            self.last_utc, self.last_mono = now_utc, mono_s
            self.counters["increments"] += 1
            if now_utc - self.last_saved >= self.s.persist_interval_s or now_utc < self.last_saved:
                self.save()
                self.last_saved = now_utc

    def _accumulate(self, inc: EnergyIncrement, comp: EnergyIncrement | None, t: float, rate: Any,
                    peaks_ok: bool) -> None:
        """One second's energy into the registers in use and its power into demand (billing demand sees zero
        power in test mode)."""
        bank = self.test if self.test is not None else self.billing
        bank.energy.add(inc, comp, rate)
        if self.inputs.energy_gate and self.test is None:
            self.conditional.add(inc, comp, rate)
        src = comp if self.s.publish_compensated and comp is not None else inc
        integrals = demand_integrals(src)
        if self.test is not None:
            self.test.demand.accumulate(integrals, inc.duration_s, t, rate, True)
            self.billing.demand.accumulate(np.zeros_like(integrals), inc.duration_s, t, rate, peaks_ok)
        else:
            self.billing.demand.accumulate(integrals, inc.duration_s, t, rate, peaks_ok)

    def _flag_interval(self, inc: EnergyIncrement) -> None:
        """The interval that holds this second says whether samples were lost in it, and where the energy of that
        time came from (metrology.gapfill)."""
        if inc.filled_s > 0:
            self.lp.flag("gap_filled")
        if inc.gap_s > 0:
            self.lp.flag("gap_unfilled")
        if self.paths_differ:
            self.lp.flag("energy_mismatch")

    def energy_paths(self, differ: bool, now_utc: float, info: Mapping[str, Any]) -> None:
        """The cross-check of the sample and chip energy paths crossed the accuracy class (``differ``) or came
        back under it: the status bit follows, and the load profile keeps an ``energy_mismatch`` event."""
        with self.mutex:
            if differ == self.paths_differ:
                return
            self.paths_differ = differ
            # at the boundary after the last registered second: registration may lag the cross-check
            at = self.last_utc if self.last_utc is not None else now_utc
            self.lp.event("energy_mismatch", at, {"state": "begin" if differ else "end", **info})

    def _time_checks(self, now_utc: float, mono_s: float | None, t_std: float) -> None:
        tz = self.s.timezone
        if self.started_utc is None:
            self.started_utc = now_utc
            if getattr(self, "_lp_reconfigure", False):
                self.lp.reconfigured(now_utc)
                self._lp_reconfigure = self.pending_config_event = False
            elif self.last_utc is not None and now_utc - 1.0 - self.last_utc > OUTAGE_MIN_S:
                self.lp.outage(self.last_utc, now_utc - 1.0, t_std)
                self.status_bits |= STATUS_BITS["aux_power_loss"]
            if self.pending_config_event:
                self.lp.event("config", now_utc)
                self.pending_config_event = False
            if self.pending_firmware is not None:
                self.lp.event("firmware", now_utc, self.pending_firmware)
                self.pending_firmware = None
        elif (mono_s is not None and self.last_mono is not None and self.last_utc is not None
              and abs((now_utc - self.last_utc) - (mono_s - self.last_mono)) > TIME_SET_TOLERANCE_S):
            self.lp.event("time_set", now_utc, {"old": self.last_utc + (mono_s - self.last_mono), "new": now_utc})
            self.status_bits |= STATUS_BITS["manual_time_change"]
            log.warning("clock set from %.0f to %.0f", self.last_utc + mono_s - self.last_mono, now_utc)
        dst = tz.is_dst(now_utc)
        if self.dst is not None and dst != self.dst:
            self.lp.event("dst", now_utc, {"dst": dst})
        self.dst = dst

    def _periods(self, local: Any, t: float) -> None:
        regs = self.billing.energy.total_vector()
        self.prev_hour.update((local.date().isoformat(), local.hour), regs)
        self.prev_day.update(local.date().isoformat(), regs)
        if self.season is not None and self.tou is not None and self.tou.season != self.season \
                and self.s.tou_enabled:
            self.snapshots["season"] = self.take_snapshot(t, f"season {self.season + 1} ended")
        if self.tou is not None:
            self.season = self.tou.season

    # ------------------------------------------------------------------ snapshots

    def take_snapshot(self, t: float, why: str) -> dict[str, Any]:
        d = self.billing.demand
        return {"time": t, "why": why, "energy": self.billing.energy.state(),
                "peaks": d.peaks.value.tolist(), "peak_times": d.peaks.time_s.tolist(),
                "cumulative": d.cumulative.tolist(), "rate_peak": d.rate_peak.tolist()}

    def _self_read(self, trigger: str, t: float) -> None:
        last = self.self_reads.last(1)
        if last and last[0]["trigger"] == trigger and abs(last[0]["ts"] - t) < 1.0:
            return                    # already taken before a crash lost the state that said so
        self.self_reads.append(t, {"trigger": trigger, "registers": self.summary()})

    # ------------------------------------------------------------------ events and readings

    def now(self) -> float:
        return float(self.clock.time())

    def audit_event(self, user: str, action: str, args: dict[str, Any], accepted: bool, reason: str = "") -> None:
        now = self.now()
        self.audit.append(now, {"user": user, "action": action, "args": args,
                                "accepted": int(accepted), "reason": reason})
        priority = AUDIT_EVENT_PRIORITY.get(action, AUDIT_EVENT_PRIORITY_DEFAULT) if accepted else \
            AUDIT_REFUSED_PRIORITY
        self.events.record(Event(priority, "revenue", action, "accepted" if accepted else f"refused: {reason}",
                                 user, args), now)
        if accepted:
            self.log_info("%s by %s accepted %s", action, user or "?", args)
        else:
            self.log_info("%s by %s refused: %s", action, user or "?", reason)

    def log_info(self, msg: str, *args: Any) -> None:
        log.info(msg, *args)

    def billing_period_reset(self, now: float, user: str, source: str) -> dict[str, Any]:
        """The billing-period reset itself: by command or button (``commands``, which check and audit) or by the
        schedule (audited here)."""
        snap = self.take_snapshot(now, f"BPR ({source})")
        snap["avg_pf"] = self.average_pf()
        self.snapshots["bpr"] = snap
        self.billing.demand.reset_peaks()
        self.minmax.reset(now)
        self.counters["bpr"] += 1
        self.last_reset_utc = now
        self.lp.event("bpr", now, {"source": source})
        if "bpr" in self.s.self_read_triggers:
            self._self_read("bpr", now)
        if source == "schedule":
            self.audit_event(user, "billing_reset", {"source": source}, True)
        return {"count": self.counters["bpr"], "time": now}

    def exit_test(self, now: float, why: str) -> dict[str, Any]:
        if self.test is None:
            return {"test_mode": False}
        final = self.test_registers()
        self.test = None  # test registers are zeroed on exit (ION p.272)
        self.lp.resume(self.test_entered, now)
        if why != "command":
            self.audit_event("", "test_mode_exit", {"why": why}, True)
        return {"test_mode": False, "why": why, "final": final}

    def test_registers(self) -> dict[str, float]:
        t = self.test
        if t is None:
            return {}
        d = t.demand.present()
        return {"wh_del": t.energy.get("wh_del"), "wh_rec": t.energy.get("wh_rec"),
                "varh_del": t.energy.get("varh_del"), "varh_rec": t.energy.get("varh_rec"),
                "vah_del": t.energy.get("vah_del"), "vah_rec": t.energy.get("vah_rec"),
                "p_demand_del": float(d[0]), "p_demand_rec": float(d[1])}

    def average_pf(self) -> float:
        bpr = self.snapshots.get("bpr")
        e = self.billing.energy
        wh, vah = e.get("wh_del") + e.get("wh_rec"), e.get("vah_del") + e.get("vah_rec")
        if bpr:
            then = bpr["energy"][UNCOMP]
            w0 = then[QUANTITIES.index("wh_del")][3] + then[QUANTITIES.index("wh_rec")][3]
            v0 = then[QUANTITIES.index("vah_del")][3] + then[QUANTITIES.index("vah_rec")][3]
            return pf_of_energy(wh, w0, vah, v0)
        return pf_of_energy(wh, 0.0, vah, 0.0)

    def summary(self) -> dict[str, Any]:
        """Totals of every energy register, demand and peaks: the self-read and freeze content."""
        e, d = self.billing.energy, self.billing.demand
        return {"energy": {q: e.get(q) for q in QUANTITIES},
                "energy_comp": {q: e.get(q, compensated=True) for q in QUANTITIES},
                "demand": d.present().tolist(), "peaks": d.peaks.value.tolist(), "peak_times": d.peaks.time_s.tolist(),
                "cumulative": d.cumulative.tolist(), "avg_pf": self.average_pf()}

    def general_failure(self) -> None:
        """A self-check of the registers failed (they faulted and were restarted)."""
        with self.mutex:
            self.status_bits |= STATUS_BITS["general_failure"]

    def _status_sources(self) -> None:
        """The event bits whose sources are outside the registers, latched for the load-profile interval."""
        i, bits = self.inputs, 0
        if i.battery_low:
            bits |= STATUS_BITS["battery_failure"]
        if i.cover:
            bits |= STATUS_BITS["cover_removed"]
        if i.time_quality == SYNCHRONISED:
            self.time_synced_once = True
        elif i.time_quality == DEGRADED:
            bits |= STATUS_BITS["time_sync_drift"]          # followed, but off the [time] limits
        elif self.time_synced_once:
            bits |= STATUS_BITS["lost_time_sync"]           # had a synchronised clock, now has none
        if self.lp.overflowed:
            bits |= STATUS_BITS["lp_overflow"]
            self.lp.overflowed = False
        self.status_bits |= bits

    def status_word(self) -> int:
        word = self.status_bits
        if self.dst:
            word |= STATUS_BITS["dst"]
        if self.test is not None:
            word |= STATUS_BITS["test_mode"]
        if self.inputs.locked:
            word |= STATUS_BITS["revenue_locked"]
        if self.pending_config_event:
            word |= STATUS_BITS["configuration_change"]
        if self.paths_differ:
            word |= STATUS_BITS["energy_paths_differ"]
        if self.inputs.pulse_overflow:
            word |= STATUS_BITS["pulse_overflow"]
        if self.inputs.alarm_active:
            word |= STATUS_BITS["alarm_active"]
        return word


# Status word (JEM L2532 system bits, bit n-1 for JEM bit n) and four bits of this meter.
STATUS_BITS = {"battery_failure": 1 << 0, "aux_power_loss": 1 << 1, "general_failure": 1 << 2,
               "lp_overflow": 1 << 3, "pulse_overflow": 1 << 4, "lost_time_sync": 1 << 5,
               "time_sync_drift": 1 << 6, "dst": 1 << 7, "cover_removed": 1 << 8,
               "manual_time_change": 1 << 9, "configuration_change": 1 << 10, "firmware_change": 1 << 11,
               "test_mode": 1 << 12, "revenue_locked": 1 << 13, "energy_paths_differ": 1 << 14,
               "alarm_active": 1 << 15}   # pulse_overflow: an energy pulse output is suspended (io service)
# Where each bit comes from (docs/revenue.md). Event bits stay set for at least the load-profile interval.
STATUS_SOURCES = {
    "battery_failure": "the RTC reports its backup battery low or empty (RTC_VL_READ on /dev/rtc0; simulated "
                       "board: the file battery_low in [revenue.inputs] sim_dir)",
    "aux_power_loss": "an outage: registration resumed after more than 2 s",
    "general_failure": "a persisted register record failed its check at start, or the registers faulted and "
                       "were restarted",
    "lp_overflow": "the load profile overwrote a record not yet read since the last read",
    "pulse_overflow": "an energy pulse output is suspended (io service)",
    "lost_time_sync": "the time service had the clock synchronised since start and has not now",
    "time_sync_drift": "the time service follows a source but a [time] limit is crossed (degraded)",
    "dst": "daylight saving time is in force",
    "cover_removed": "the [revenue.inputs] cover digital input is on",
    "manual_time_change": "the clock was set (it moved against the monotonic clock)",
    "configuration_change": "the configuration changed since the registers last ran",
    "firmware_change": "the registers were last written by another firmware version (with a load-profile "
                       "firmware event naming both)",
    "test_mode": "test mode is on",
    "revenue_locked": "the revenue lock is engaged",
    "energy_paths_differ": "the sample and chip energy paths differ beyond [revenue] accuracy_class",
    "alarm_active": "an alarm of priority Low or above is active (io service)",
}


# Published point names (metrology.publish) -> the interval value keys the registers read
_FROM_PUBLISHED = {"v_ln": ("v_an", "v_bn", "v_cn"), "i": ("i_a", "i_b", "i_c"),
                   "p": ("p_a", "p_b", "p_c", "p_total"), "q": ("q_a", "q_b", "q_c", "q_total"),
                   "s": ("s_a", "s_b", "s_c", "s_total"), "pf": ("pf_a", "pf_b", "pf_c", "pf_total"),
                   "freq": ("frequency",)}


def raw_values(values: Mapping[str, Any]) -> Mapping[str, Any]:
    """Accept an interval's values (v_ln, i, p, ...) or the published points (v_an, i_a, p_total, ...)."""
    if "v_ln" in values or "v_an" not in values:
        return values
    return {key: np.array([float(values.get(n, np.nan)) for n in names]) for key, names in _FROM_PUBLISHED.items()}
