"""Control commands of the revenue registers: resets, BPR, freeze, presets, test mode, reading.

Every attempt is written to the ``revenue_audit`` log with the user, the arguments, whether it was
accepted and, if not, why. Refusals raise ``AccessDenied`` with a message that says what was
refused and what to do. Which commands the revenue lock refuses is decided by
``firmware.security.authorize.revenue_lock_refusal`` (the one list of them: energy resets, presets, test mode;
peak-demand and billing-period resets unless ``[revenue] demand_reset_when_locked`` allows them); the
commands ask it each time. Peak-demand and billing-period resets also
respect the lockout (``demand_reset_lockout``; ION p.252) except when the schedule runs them.

``RevenueCommands`` is composed into ``RevenueEngine`` (``engine.cmd``): it holds no registers of its own and
reaches them, the lock and the logs through the engine it was given.
"""
from __future__ import annotations

import math
import threading
from typing import Any, Callable, Protocol

from firmware.revenue.bank import Bank
from firmware.revenue.loadprofile import LoadProfile
from firmware.revenue.settings import RevenueSettings
from firmware.security.authorize import revenue_lock_refusal
from firmware.storage.logstore import LogStore
from hal.errors import AccessDenied
from metrology.registers import COMP, QUANTITIES, RATE_SLOT0, SLOTS, UNCOMP, EnergyBank, MinMaxAvg, PeriodDelta
from metrology.tou import RATES


class Registers(Protocol):
    """What the commands use of ``RevenueEngine`` (which this module does not import: the engine imports it)."""

    s: RevenueSettings
    mutex: threading.RLock
    lock_source: Callable[[], bool]
    billing: Bank
    test: Bank | None
    conditional: EnergyBank
    prev_hour: PeriodDelta
    prev_day: PeriodDelta
    minmax: MinMaxAvg
    lp: LoadProfile
    audit: LogStore
    self_reads: LogStore
    counters: dict[str, int]
    snapshots: dict[str, dict[str, Any] | None]
    tou: Any
    last_reset_utc: float
    last_utc: float | None
    persisted_utc: float | None
    test_entered: float
    test_activity: float
    saves: int

    def now(self) -> float: ...
    def audit_event(self, user: str, action: str, args: dict[str, Any], accepted: bool, reason: str = "") -> None: ...
    def save(self) -> None: ...
    def billing_period_reset(self, now: float, user: str, source: str) -> dict[str, Any]: ...
    def exit_test(self, now: float, why: str) -> dict[str, Any]: ...
    def take_snapshot(self, t: float, why: str) -> dict[str, Any]: ...
    def test_registers(self) -> dict[str, float]: ...
    def average_pf(self) -> float: ...
    def status_word(self) -> int: ...


class RevenueCommands:
    """The control commands of one ``RevenueEngine``."""

    def __init__(self, engine: Registers) -> None:
        self.e = engine

    # ------------------------------------------------------------------ helpers

    def _refuse(self, user: str, action: str, args: dict[str, Any], reason: str) -> None:
        self.e.audit_event(user, action, args, False, reason)
        raise AccessDenied(reason)

    def _check_lock(self, user: str, action: str, args: dict[str, Any]) -> None:
        reason = revenue_lock_refusal(action, bool(self.e.lock_source()), self.e.s.reset_when_locked)
        if reason:
            self._refuse(user, action, args, reason)

    def _check_lockout(self, user: str, action: str, args: dict[str, Any], now: float) -> None:
        lockout = self.e.s.reset_lockout_s
        since = now - self.e.last_reset_utc
        if 0 <= since < lockout:
            self._refuse(user, action, args, f"{action.replace('_', ' ')} refused: within the reset lockout "
                                             f"({since:.0f} s since the last reset, lockout {lockout:.0f} s); "
                                             f"try again in {lockout - since:.0f} s")

    def _run(self, user: str, action: str, args: dict[str, Any], body: Callable[[], Any]) -> Any:
        with self.e.mutex:
            result = body()
            self.e.audit_event(user, action, args, True)
            if self.e.test is not None:
                self.e.test_activity = self.e.now()
            self.e.save()
            return result

    # ------------------------------------------------------------------ resets

    def demand_reset(self, user: str = "", source: str = "command") -> dict[str, Any]:
        args = {"source": source}
        with self.e.mutex:
            now = self.e.now()
            self._check_lock(user, "demand_reset", args)
            self._check_lockout(user, "demand_reset", args, now)

            def body() -> dict[str, Any]:
                self.e.billing.demand.reset_peaks()
                self.e.last_reset_utc = now
                self.e.counters["demand_reset"] += 1
                self.e.lp.event("demand_reset", now)
                return {"count": self.e.counters["demand_reset"], "time": now}
            return self._run(user, "demand_reset", args, body)

    def billing_reset(self, user: str = "", source: str = "command") -> dict[str, Any]:
        """Billing-period reset by command or the BPR button (the schedule calls ``RevenueEngine.billing_period_reset``)."""
        args = {"source": source}
        with self.e.mutex:
            now = self.e.now()
            self._check_lock(user, "billing_reset", args)
            self._check_lockout(user, "billing_reset", args, now)
            return self._run(user, "billing_reset", args, lambda: self.e.billing_period_reset(now, user, source))

    def energy_reset(self, user: str = "") -> dict[str, Any]:
        with self.e.mutex:
            self._check_lock(user, "energy_reset", {})
            now = self.e.now()

            def body() -> dict[str, Any]:
                self.e.billing.energy.clear()
                self.e.conditional.clear()
                self.e.prev_hour.key = self.e.prev_day.key = None
                self.e.counters["energy_reset"] += 1
                self.e.lp.event("energy_reset", now)
                return {"count": self.e.counters["energy_reset"], "time": now}
            return self._run(user, "energy_reset", {}, body)

    def preset(self, user: str = "", register: str = "", value: float = 0.0, phase: str = "total",
               rate: str = "", compensated: bool = False) -> dict[str, Any]:
        """Set one energy register (primary units) to ``value``; only while unlocked."""
        args = {"register": register, "value": value, "phase": phase, "rate": rate, "compensated": compensated}
        with self.e.mutex:
            self._check_lock(user, "preset", args)
            if register not in QUANTITIES:
                self._refuse(user, "preset", args, f"preset refused: register {register!r} is not one of "
                                                   f"{', '.join(QUANTITIES)}")
            if phase not in ("a", "b", "c", "total") or (rate and rate not in RATES):
                self._refuse(user, "preset", args, "preset refused: phase must be a, b, c or total and rate A-H")
            if not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
                self._refuse(user, "preset", args, "preset refused: the value must be a finite number >= 0")
            slot = RATE_SLOT0 + RATES.index(rate) if rate else ("a", "b", "c", "total").index(phase)
            now = self.e.now()

            def body() -> dict[str, Any]:
                bank = self.e.billing.energy
                old = bank.get(register, slot, compensated)
                bank.set(register, float(value), slot, compensated)
                self.e.counters["preset"] += 1
                self.e.lp.event("preset", now, {"register": register, "old": old, "new": value})
                args["old"] = old
                return {"register": register, "old": old, "new": float(value)}
            return self._run(user, "preset", args, body)

    def freeze(self, user: str = "") -> dict[str, Any]:
        """Snapshot the billing registers (DNP3 frozen counters); not a reset, so allowed while locked."""
        with self.e.mutex:
            now = self.e.now()

            def body() -> dict[str, Any]:
                self.e.snapshots["freeze"] = self.e.take_snapshot(now, "freeze")
                self.e.counters["freeze"] += 1
                self.e.lp.event("freeze", now)
                return {"count": self.e.counters["freeze"], "time": now}
            return self._run(user, "freeze", {}, body)

    def demand_sync(self, user: str = "") -> dict[str, Any]:
        """A synchronisation pulse (command or the demand-sync input): the open subinterval ends now."""
        with self.e.mutex:
            # The pulse falls on the boundary after the last registered second: seconds are registered
            # whole, so a subinterval starting at the command's arrival (inside a second) would be
            # closed again, nearly empty, by the next second's middle lying before it.
            last = self.e.last_utc
            now = float(last) if last is not None else self.e.now()

            def body() -> dict[str, Any]:
                tz = self.e.s.timezone
                rate = self.e.tou.rate if (self.e.tou and self.e.s.tou_enabled) else None
                for bank in (self.e.billing, self.e.test):
                    if bank is not None:
                        bank.demand.sync(tz.standard_s(now), now, rate, True)
                return {"time": now}
            return self._run(user, "demand_sync", {}, body)

    # ------------------------------------------------------------------ test mode

    def test_mode_enter(self, user: str = "") -> dict[str, Any]:
        with self.e.mutex:
            self._check_lock(user, "test_mode_enter", {})
            now = self.e.now()

            def body() -> dict[str, Any]:
                if self.e.test is None:
                    self.e.test = Bank(self.e.s)
                    self.e.test_entered = now
                    self.e.lp.pause(now)
                return {"test_mode": True, "entered": self.e.test_entered,
                        "timeout_s": self.e.s.test_mode_timeout_s}
            return self._run(user, "test_mode_enter", {}, body)

    def test_mode_exit(self, user: str = "") -> dict[str, Any]:
        with self.e.mutex:
            now = self.e.now()
            return self._run(user, "test_mode_exit", {}, lambda: self.e.exit_test(now, "command"))

    # ------------------------------------------------------------------ reading

    def registers(self, user: str = "") -> dict[str, Any]:
        """Every register, for the web page, tests and `meter` tools."""
        from firmware.revenue.demandset import DEMAND_CHANNELS
        with self.e.mutex:
            e, d = self.e.billing.energy, self.e.billing.demand
            energy = {}
            for c, tag in ((UNCOMP, ""), (COMP, "_comp")):
                for q in QUANTITIES:
                    row = e.values[c, QUANTITIES.index(q)]
                    energy[q + tag] = {"a": row[0], "b": row[1], "c": row[2], "total": row[3],
                                       "rates": {RATES[r]: row[RATE_SLOT0 + r] for r in range(SLOTS - RATE_SLOT0)}}
            return {
                "time": self.e.last_utc, "persisted_time": self.e.persisted_utc,
                "energy": energy, "conditional": {q: self.e.conditional.get(q) for q in QUANTITIES},
                "demand": dict(zip(DEMAND_CHANNELS, d.present().tolist())),
                "predicted": dict(zip(DEMAND_CHANNELS, d.predicted().tolist())),
                "peaks": {ch: {"value": float(d.peaks.value[i]), "time": float(d.peaks.time_s[i]),
                               "coincident": d.coincident(ch)} for i, ch in enumerate(DEMAND_CHANNELS)},
                "cumulative": dict(zip(DEMAND_CHANNELS, d.cumulative.tolist())),
                "continuous_cumulative": dict(zip(DEMAND_CHANNELS, d.continuous_cumulative().tolist())),
                "previous_hour": dict(zip(QUANTITIES, self.e.prev_hour.previous.tolist())),
                "previous_day": dict(zip(QUANTITIES, self.e.prev_day.previous.tolist())),
                "minmax": self.e.minmax.table(), "avg_pf_since_bpr": self.e.average_pf(),
                "snapshots": self.e.snapshots, "counters": self.e.counters,
                "tou": vars(self.e.tou) if self.e.tou else None,
                "test_mode": self.e.test is not None, "test": self.e.test_registers(),
                "locked": bool(self.e.lock_source()), "status_word": self.e.status_word(),
                "saves": self.e.saves,
            }

    def load_profile(self, user: str = "", mode: str = "all", days: int = 0, limit: int = 100000) -> list[Any]:
        with self.e.mutex:
            if mode == "all":
                return self.e.lp.read_all(limit)
            if mode == "since_last_read":
                rows = self.e.lp.read_since_last(limit)
                self.e.save()
                return rows
            if mode == "days":
                return self.e.lp.read_days(days, self.e.last_utc or self.e.now(), self.e.s.timezone)
            raise AccessDenied(f"load_profile mode {mode!r} is not one of all, since_last_read, days")

    def self_read_log(self, user: str = "", n: int = 96) -> list[Any]:
        return self.e.self_reads.last(int(n))

    def audit_log(self, user: str = "", n: int = 100) -> list[Any]:
        return self.e.audit.last(int(n))

    def table(self) -> dict[str, Callable[..., Any]]:
        """Control commands, served by the owning service as ``<service>.<name>``."""
        return {"demand_reset": self.demand_reset, "billing_reset": self.billing_reset,
                "energy_reset": self.energy_reset, "demand_sync": self.demand_sync, "freeze": self.freeze,
                "preset": self.preset, "test_mode_enter": self.test_mode_enter,
                "test_mode_exit": self.test_mode_exit, "registers": self.registers,
                "load_profile": self.load_profile, "self_reads": self.self_read_log, "revenue_audit": self.audit_log}
