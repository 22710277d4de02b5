"""Control commands of the revenue registers: resets, BPR, freeze, presets, test mode, reading.

Every attempt is written to the ``revenue_audit`` log with the user, the arguments, whether it was
accepted and, if not, why. Refusals raise ``AccessDenied`` with a message that says what was
refused and what to do. While the revenue lock is engaged (SPEC §3, §8; ION p.279: "Revenue-locked
meters must be unlocked to perform resets that impact revenue data"), energy resets, presets and
test mode are refused; peak-demand and billing-period resets are refused too unless
``[revenue] demand_reset_when_locked`` allows them. Peak-demand and billing-period resets also
respect the lockout (``demand_reset_lockout``; ION p.252) except when the schedule runs them.
"""
from __future__ import annotations

import math
from typing import Any, Callable

from hal.errors import AccessDenied
from metrology.registers import COMP, QUANTITIES, RATE_SLOT0, SLOTS, UNCOMP, average_pf
from metrology.tou import RATES


class CommandsMixin:
    """Mixed into ``RevenueEngine``; uses its registers, lock and logs."""

    # ------------------------------------------------------------------ helpers

    def _now(self) -> float:
        return float(self.clock.time())  # type: ignore[attr-defined]

    def _audit(self, user: str, action: str, args: dict[str, Any], accepted: bool, reason: str = "") -> None:
        self.audit.append(self._now(), {"user": user, "action": action, "args": args,  # type: ignore[attr-defined]
                                        "accepted": int(accepted), "reason": reason})
        if accepted:
            self.log_info("%s by %s accepted %s", action, user or "?", args)
        else:
            self.log_info("%s by %s refused: %s", action, user or "?", reason)

    def log_info(self, msg: str, *args: Any) -> None:
        import logging
        logging.getLogger("revenue").info(msg, *args)

    def _refuse(self, user: str, action: str, args: dict[str, Any], reason: str) -> None:
        self._audit(user, action, args, False, reason)
        raise AccessDenied(reason)

    def _check_lock(self, user: str, action: str, args: dict[str, Any], what: str) -> None:
        if self.lock_source():  # type: ignore[attr-defined]
            self._refuse(user, action, args, f"{what} refused: the meter is revenue-locked; open the sealed "
                                             "revenue lock switch to do this")

    def _check_lockout(self, user: str, action: str, args: dict[str, Any], now: float) -> None:
        lockout = self.s.reset_lockout_s  # type: ignore[attr-defined]
        since = now - self.last_reset_utc  # type: ignore[attr-defined]
        if 0 <= since < lockout:
            self._refuse(user, action, args, f"{action.replace('_', ' ')} refused: within the reset lockout "
                                             f"({since:.0f} s since the last reset, lockout {lockout:.0f} s); "
                                             f"try again in {lockout - since:.0f} s")

    def _run(self, user: str, action: str, args: dict[str, Any], body: Callable[[], Any]) -> Any:
        with self.mutex:  # type: ignore[attr-defined]
            result = body()
            self._audit(user, action, args, True)
            if self.test is not None:  # type: ignore[attr-defined]
                self.test_activity = self._now()
            self.save()  # type: ignore[attr-defined]
            return result

    # ------------------------------------------------------------------ resets

    def demand_reset(self, user: str = "", source: str = "command") -> dict[str, Any]:
        args = {"source": source}
        with self.mutex:  # type: ignore[attr-defined]
            now = self._now()
            if not self.s.reset_when_locked:  # type: ignore[attr-defined]
                self._check_lock(user, "demand_reset", args, "peak demand reset")
            self._check_lockout(user, "demand_reset", args, now)

            def body() -> dict[str, Any]:
                self.billing.demand.reset_peaks()  # type: ignore[attr-defined]
                self.last_reset_utc = now
                self.counters["demand_reset"] += 1  # type: ignore[attr-defined]
                self.lp.event("demand_reset", now)  # type: ignore[attr-defined]
                return {"count": self.counters["demand_reset"], "time": now}  # type: ignore[attr-defined]
            return self._run(user, "demand_reset", args, body)

    def billing_reset(self, user: str = "", source: str = "command") -> dict[str, Any]:
        """Billing-period reset by command or the BPR button (the schedule calls ``_billing_reset``)."""
        args = {"source": source}
        with self.mutex:  # type: ignore[attr-defined]
            now = self._now()
            if not self.s.reset_when_locked:  # type: ignore[attr-defined]
                self._check_lock(user, "billing_reset", args, "billing-period reset")
            self._check_lockout(user, "billing_reset", args, now)
            return self._run(user, "billing_reset", args, lambda: self._billing_reset(now, user, source))

    def _billing_reset(self, now: float, user: str, source: str) -> dict[str, Any]:
        e = self
        snap = e._snapshot(now, f"BPR ({source})")  # type: ignore[attr-defined]
        snap["avg_pf"] = self.average_pf()
        e.snapshots["bpr"] = snap  # type: ignore[attr-defined]
        e.billing.demand.reset_peaks()  # type: ignore[attr-defined]
        e.minmax.reset(now)  # type: ignore[attr-defined]
        e.counters["bpr"] += 1  # type: ignore[attr-defined]
        e.last_reset_utc = now
        e.lp.event("bpr", now, {"source": source})  # type: ignore[attr-defined]
        if "bpr" in e.s.self_read_triggers:  # type: ignore[attr-defined]
            e._self_read("bpr", now)  # type: ignore[attr-defined]
        if source == "schedule":
            self._audit(user, "billing_reset", {"source": source}, True)
        return {"count": e.counters["bpr"], "time": now}  # type: ignore[attr-defined]

    def energy_reset(self, user: str = "") -> dict[str, Any]:
        with self.mutex:  # type: ignore[attr-defined]
            self._check_lock(user, "energy_reset", {}, "energy reset")
            now = self._now()

            def body() -> dict[str, Any]:
                self.billing.energy.clear()  # type: ignore[attr-defined]
                self.conditional.clear()  # type: ignore[attr-defined]
                self.prev_hour.key = self.prev_day.key = None  # type: ignore[attr-defined]
                self.counters["energy_reset"] += 1  # type: ignore[attr-defined]
                self.lp.event("energy_reset", now)  # type: ignore[attr-defined]
                return {"count": self.counters["energy_reset"], "time": now}  # type: ignore[attr-defined]
            return self._run(user, "energy_reset", {}, body)

    def preset(self, user: str = "", register: str = "", value: float = 0.0, phase: str = "total",
               rate: str = "", compensated: bool = False) -> dict[str, Any]:
        """Set one energy register (primary units) to ``value``; only while unlocked."""
        args = {"register": register, "value": value, "phase": phase, "rate": rate, "compensated": compensated}
        with self.mutex:  # type: ignore[attr-defined]
            self._check_lock(user, "preset", args, "energy register preset")
            if register not in QUANTITIES:
                self._refuse(user, "preset", args, f"preset refused: register {register!r} is not one of "
                                                   f"{', '.join(QUANTITIES)}")
            if phase not in ("a", "b", "c", "total") or (rate and rate not in RATES):
                self._refuse(user, "preset", args, "preset refused: phase must be a, b, c or total and rate A-H")
            if not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
                self._refuse(user, "preset", args, "preset refused: the value must be a finite number >= 0")
            slot = RATE_SLOT0 + RATES.index(rate) if rate else ("a", "b", "c", "total").index(phase)
            now = self._now()

            def body() -> dict[str, Any]:
                bank = self.billing.energy  # type: ignore[attr-defined]
                old = bank.get(register, slot, compensated)
                bank.set(register, float(value), slot, compensated)
                self.counters["preset"] += 1  # type: ignore[attr-defined]
                self.lp.event("preset", now, {"register": register, "old": old, "new": value})  # type: ignore
                args["old"] = old
                return {"register": register, "old": old, "new": float(value)}
            return self._run(user, "preset", args, body)

    def freeze(self, user: str = "") -> dict[str, Any]:
        """Snapshot the billing registers (DNP3 frozen counters); not a reset, so allowed while locked."""
        with self.mutex:  # type: ignore[attr-defined]
            now = self._now()

            def body() -> dict[str, Any]:
                self.snapshots["freeze"] = self._snapshot(now, "freeze")  # type: ignore[attr-defined]
                self.counters["freeze"] += 1  # type: ignore[attr-defined]
                self.lp.event("freeze", now)  # type: ignore[attr-defined]
                return {"count": self.counters["freeze"], "time": now}  # type: ignore[attr-defined]
            return self._run(user, "freeze", {}, body)

    def demand_sync(self, user: str = "") -> dict[str, Any]:
        """A synchronisation pulse (command or the demand-sync input): the open subinterval ends now."""
        with self.mutex:  # type: ignore[attr-defined]
            # The pulse falls on the boundary after the last registered second: seconds are registered
            # whole, so a subinterval starting at the command's arrival (inside a second) would be
            # closed again, nearly empty, by the next second's middle lying before it.
            last = self.last_utc  # type: ignore[attr-defined]
            now = float(last) if last is not None else self._now()

            def body() -> dict[str, Any]:
                tz = self.s.timezone  # type: ignore[attr-defined]
                rate = self.tou.rate if (self.tou and self.s.tou_enabled) else None  # type: ignore
                for bank in (self.billing, self.test):  # type: ignore[attr-defined]
                    if bank is not None:
                        bank.demand.sync(tz.standard_s(now), now, rate, True)
                return {"time": now}
            return self._run(user, "demand_sync", {}, body)

    # ------------------------------------------------------------------ test mode

    def test_mode_enter(self, user: str = "") -> dict[str, Any]:
        from firmware.revenue.engine import Bank
        with self.mutex:  # type: ignore[attr-defined]
            self._check_lock(user, "test_mode_enter", {}, "test mode")
            now = self._now()

            def body() -> dict[str, Any]:
                if self.test is None:  # type: ignore[attr-defined]
                    self.test = Bank(self.s)  # type: ignore[attr-defined]
                    self.test_entered = now
                    self.lp.pause(now)  # type: ignore[attr-defined]
                return {"test_mode": True, "entered": self.test_entered,
                        "timeout_s": self.s.test_mode_timeout_s}  # type: ignore[attr-defined]
            return self._run(user, "test_mode_enter", {}, body)

    def test_mode_exit(self, user: str = "") -> dict[str, Any]:
        with self.mutex:  # type: ignore[attr-defined]
            now = self._now()
            return self._run(user, "test_mode_exit", {}, lambda: self._exit_test(now, "command"))

    def _exit_test(self, now: float, why: str) -> dict[str, Any]:
        if self.test is None:  # type: ignore[attr-defined]
            return {"test_mode": False}
        final = self.test_registers()
        self.test = None  # test registers are zeroed on exit (ION p.272)
        self.lp.resume(self.test_entered, now)  # type: ignore[attr-defined]
        if why != "command":
            self._audit("", "test_mode_exit", {"why": why}, True)
        return {"test_mode": False, "why": why, "final": final}

    def test_registers(self) -> dict[str, float]:
        t = self.test  # type: ignore[attr-defined]
        if t is None:
            return {}
        d = t.demand.present()
        return {"wh_del": t.energy.get("wh_del"), "wh_rec": t.energy.get("wh_rec"),
                "varh_del": t.energy.get("varh_del"), "varh_rec": t.energy.get("varh_rec"),
                "vah_del": t.energy.get("vah_del"), "vah_rec": t.energy.get("vah_rec"),
                "p_demand_del": float(d[0]), "p_demand_rec": float(d[1])}

    # ------------------------------------------------------------------ reading

    def average_pf(self) -> float:
        bpr = self.snapshots.get("bpr")  # type: ignore[attr-defined]
        e = self.billing.energy  # type: ignore[attr-defined]
        wh, vah = e.get("wh_del") + e.get("wh_rec"), e.get("vah_del") + e.get("vah_rec")
        if bpr:
            then = bpr["energy"][UNCOMP]
            w0 = then[QUANTITIES.index("wh_del")][3] + then[QUANTITIES.index("wh_rec")][3]
            v0 = then[QUANTITIES.index("vah_del")][3] + then[QUANTITIES.index("vah_rec")][3]
            return average_pf(wh, w0, vah, v0)
        return average_pf(wh, 0.0, vah, 0.0)

    def summary(self) -> dict[str, Any]:
        """Totals of every energy register, demand and peaks: the self-read and freeze content."""
        e, d = self.billing.energy, self.billing.demand  # type: ignore[attr-defined]
        return {"energy": {q: e.get(q) for q in QUANTITIES},
                "energy_comp": {q: e.get(q, compensated=True) for q in QUANTITIES},
                "demand": d.present().tolist(), "peaks": d.peaks.value.tolist(), "peak_times": d.peaks.time_s.tolist(),
                "cumulative": d.cumulative.tolist(), "avg_pf": self.average_pf()}

    def registers(self, user: str = "") -> dict[str, Any]:
        """Every register, for the web page, tests and `meter` tools."""
        from firmware.revenue.demandset import DEMAND_CHANNELS
        with self.mutex:  # type: ignore[attr-defined]
            e, d = self.billing.energy, self.billing.demand  # type: ignore[attr-defined]
            energy = {}
            for c, tag in ((UNCOMP, ""), (COMP, "_comp")):
                for q in QUANTITIES:
                    row = e.values[c, QUANTITIES.index(q)]
                    energy[q + tag] = {"a": row[0], "b": row[1], "c": row[2], "total": row[3],
                                       "rates": {RATES[r]: row[RATE_SLOT0 + r] for r in range(SLOTS - RATE_SLOT0)}}
            return {
                "time": self.last_utc, "persisted_time": self.persisted_utc,  # type: ignore[attr-defined]
                "energy": energy, "conditional": {q: self.conditional.get(q) for q in QUANTITIES},  # type: ignore
                "demand": dict(zip(DEMAND_CHANNELS, d.present().tolist())),
                "predicted": dict(zip(DEMAND_CHANNELS, d.predicted().tolist())),
                "peaks": {ch: {"value": float(d.peaks.value[i]), "time": float(d.peaks.time_s[i]),
                               "coincident": d.coincident(ch)} for i, ch in enumerate(DEMAND_CHANNELS)},
                "cumulative": dict(zip(DEMAND_CHANNELS, d.cumulative.tolist())),
                "continuous_cumulative": dict(zip(DEMAND_CHANNELS, d.continuous_cumulative().tolist())),
                "previous_hour": dict(zip(QUANTITIES, self.prev_hour.previous.tolist())),  # type: ignore
                "previous_day": dict(zip(QUANTITIES, self.prev_day.previous.tolist())),  # type: ignore
                "minmax": self.minmax.table(), "avg_pf_since_bpr": self.average_pf(),  # type: ignore
                "snapshots": self.snapshots, "counters": self.counters,  # type: ignore[attr-defined]
                "tou": vars(self.tou) if self.tou else None,  # type: ignore[attr-defined]
                "test_mode": self.test is not None, "test": self.test_registers(),  # type: ignore
                "locked": bool(self.lock_source()), "status_word": self.status_word(),  # type: ignore
                "saves": self.saves,  # type: ignore[attr-defined]
            }

    def load_profile(self, user: str = "", mode: str = "all", days: int = 0, limit: int = 100000) -> list[Any]:
        with self.mutex:  # type: ignore[attr-defined]
            if mode == "all":
                return self.lp.read_all(limit)  # type: ignore[attr-defined]
            if mode == "since_last_read":
                rows = self.lp.read_since_last(limit)  # type: ignore[attr-defined]
                self.save()  # type: ignore[attr-defined]
                return rows
            if mode == "days":
                return self.lp.read_days(days, self.last_utc or self._now(), self.s.timezone)  # type: ignore
            raise AccessDenied(f"load_profile mode {mode!r} is not one of all, since_last_read, days")

    def self_read_log(self, user: str = "", n: int = 96) -> list[Any]:
        return self.self_reads.last(int(n))  # type: ignore[attr-defined]

    def audit_log(self, user: str = "", n: int = 100) -> list[Any]:
        return self.audit.last(int(n))  # type: ignore[attr-defined]

    def commands(self) -> dict[str, Callable[..., Any]]:
        """Control commands, served by the owning service as ``<service>.<name>``."""
        return {"demand_reset": self.demand_reset, "billing_reset": self.billing_reset,
                "energy_reset": self.energy_reset, "demand_sync": self.demand_sync, "freeze": self.freeze,
                "preset": self.preset, "test_mode_enter": self.test_mode_enter,
                "test_mode_exit": self.test_mode_exit, "registers": self.registers,
                "load_profile": self.load_profile, "self_reads": self.self_read_log, "revenue_audit": self.audit_log}
