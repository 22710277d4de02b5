"""The revenue engine fed with increments built here: registers, persistence, test mode, lock, lockout."""
from __future__ import annotations

import math
from datetime import datetime, timezone

import numpy as np
import pytest

from firmware.config import meter_schema
from firmware.revenue.engine import RevenueEngine
from firmware.revenue.loadprofile import FLAGS
from firmware.storage.eventlog import EventLog
from firmware.revenue.settings import from_config
from hal.errors import AccessDenied
from metrology.energy import EnergyIncrement

T0 = datetime(2024, 7, 1, 7, 0, tzinfo=timezone.utc).timestamp()   # a Monday, 07:00 UTC
ALL_DAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday", "holiday1", "holiday2")
# Float sums of ~10^4 per-second increments: relative rounding stays below 1e-12.
REL = 1e-9


class FakeWallClock:
    """Command time stamps (the engine takes per-second time from its caller)."""

    def __init__(self) -> None:
        self.t = T0

    def time(self) -> float:
        return self.t


def inc(p: float = 3000.0, q: float = 1000.0, v: float = 230.0, i: float = 5.0) -> EnergyIncrement:
    """One second of a balanced three-phase load (delivered when p > 0)."""
    e = EnergyIncrement(duration_s=1.0)
    ph = np.array([1.0, 1.0, 1.0, 3.0])
    side = "del" if p >= 0 else "rec"
    setattr(e, f"wh_{side}", ph * abs(p) / 3 / 3600)
    e.varh_del = ph * q / 3 / 3600
    e.varh_q1 = e.varh_del.copy()
    setattr(e, f"vah_{side}", ph * math.hypot(p, q) / 3 / 3600)
    setattr(e, f"ah_{side}", ph * i / 3600)
    setattr(e, f"v2h_{side}", ph * v * v / 3600)
    return e


# Persisting every second costs an fsync per simulated second; tests that do not look at persistence
# persist hourly (commands and flush still persist at once).
def config(**revenue):
    doc = {"revenue": {"demand_reset_lockout": 0, "persist_interval": "1 h", **revenue}}
    return meter_schema().load(doc)


def tou_config(**extra):
    doc = {"revenue": {"demand_reset_lockout": 0, "persist_interval": "1 h", "tou": {"enabled": True, "season": [
        {"start": "01-01", **{d: "00:00=A 08:00=B 20:00=A" for d in ALL_DAYS}}]}, **extra}}
    return meter_schema().load(doc)


class Rig:
    def __init__(self, tmp_path, cfg=None, locked=False) -> None:
        self.settings = from_config(cfg or config())
        self.dir = tmp_path
        self.clock = FakeWallClock()
        self.locked = locked
        self.t = T0
        self.mono = 0.0
        self.engine = self.open()

    def open(self) -> RevenueEngine:
        return RevenueEngine(self.settings, self.dir, lambda: self.locked, self.clock)

    def run(self, seconds: int, **load) -> None:
        for _ in range(seconds):
            self.t += 1
            self.mono += 1
            self.clock.t = self.t
            self.engine.on_second(inc(**load), None, {}, self.t, self.mono)

    def reopen(self) -> None:
        self.engine.close()
        self.engine = self.open()

    def reg(self, name: str = "wh_del") -> float:
        return self.engine.cmd.registers()["energy"][name]["total"]


def test_energy_per_rate_adds_up_to_the_total(tmp_path):
    rig = Rig(tmp_path, tou_config())
    rig.run(2 * 3600)                                # 07:00-09:00 UTC; +00:00 zone: A then B
    r = rig.engine.cmd.registers()["energy"]["wh_del"]
    assert r["total"] == pytest.approx(6000.0, rel=REL)
    assert r["rates"]["A"] == pytest.approx(3000.0, rel=REL)
    assert r["rates"]["B"] == pytest.approx(3000.0, rel=REL)
    assert sum(r["rates"].values()) == pytest.approx(r["total"], rel=REL)


def test_demand_peak_coincident_and_predicted(tmp_path):
    rig = Rig(tmp_path)
    rig.run(900, p=3000.0)
    rig.run(901, p=6000.0, q=0.0)                 # the closure at 07:30 happens in the next second
    reg = rig.engine.cmd.registers()
    assert reg["demand"]["p_del"] == pytest.approx(6000.0, rel=REL)
    peak = reg["peaks"]["p_del"]
    assert peak["value"] == pytest.approx(6000.0, rel=REL)
    assert peak["coincident"]["pf"] == pytest.approx(1.0, rel=REL)
    assert reg["predicted"]["p_del"] == pytest.approx(6000.0, rel=REL)


def test_registers_survive_a_restart_exactly_and_a_crash_loses_at_most_one_persist_interval(tmp_path):
    rig = Rig(tmp_path, config(persist_interval=5))
    rig.run(100)
    rig.engine.flush("sigterm")
    before = rig.reg()
    rig.reopen()
    assert rig.reg() == before                                     # flushed: nothing lost
    rig.run(13)
    live = rig.reg()
    rig.engine.close()                                             # "crash": no flush
    rig.engine = rig.open()
    after = rig.reg()
    assert before <= after <= live
    assert live - after <= 5 * 3000.0 / 3600 * (1 + REL)           # at most one 5-s persist interval


def test_lock_refuses_resets_presets_and_test_mode_and_logs_every_attempt(tmp_path):
    rig = Rig(tmp_path, locked=True)
    rig.run(10)
    for name, args in (("energy_reset", {}), ("preset", {"register": "wh_del", "value": 5.0}),
                       ("test_mode_enter", {}), ("demand_reset", {}), ("billing_reset", {})):
        with pytest.raises(AccessDenied, match="revenue-locked"):
            rig.engine.commands()[name](user="tech", **args)
    rig.engine.cmd.freeze(user="tech")                                  # a freeze resets nothing
    audit = rig.engine.cmd.audit_log(n=10)
    assert [(a["action"], a["accepted"]) for a in audit] == [
        ("energy_reset", 0), ("preset", 0), ("test_mode_enter", 0), ("demand_reset", 0), ("billing_reset", 0),
        ("freeze", 1)]
    assert all(a["user"] == "tech" and "revenue-locked" in a["reason"] for a in audit[:5])
    rig.locked = False
    result = rig.engine.cmd.preset(user="tech", register="wh_del", value=1e6)
    assert result["old"] == pytest.approx(10 * 3000.0 / 3600, rel=REL) and rig.reg() == 1e6
    assert rig.engine.cmd.audit_log(n=1)[0]["args"]["old"] == result["old"]
    # the audit joins the meter's event log: every attempt, with its priority band, user and outcome
    events = EventLog(tmp_path).read()
    assert [(e["cause"], e["priority"], e["user"]) for e in events] == [
        ("energy_reset", 128, "tech"), ("preset", 128, "tech"), ("test_mode_enter", 128, "tech"),
        ("demand_reset", 128, "tech"), ("billing_reset", 128, "tech"), ("freeze", 128, "tech"),
        ("preset", 192, "tech")]
    assert events[0]["effect"].startswith("refused: ") and "revenue-locked" in events[0]["effect"]
    assert events[-1]["effect"] == "accepted" and events[-1]["detail"]["old"] == result["old"]
    assert all(e["source"] == "revenue" for e in events)


def test_demand_reset_lockout(tmp_path):
    rig = Rig(tmp_path, config(demand_reset_lockout="5 min"))
    rig.run(900)
    rig.engine.cmd.demand_reset(user="u")
    rig.clock.t += 60
    with pytest.raises(AccessDenied, match="lockout"):
        rig.engine.cmd.demand_reset(user="u")
    rig.clock.t += 241
    rig.engine.cmd.demand_reset(user="u")
    assert [a["accepted"] for a in rig.engine.cmd.audit_log()] == [1, 0, 1]


def test_billing_period_reset_snapshots_and_moves_peaks_to_cumulative(tmp_path):
    rig = Rig(tmp_path, config(self_read_triggers=["bpr"]))
    rig.run(1800)
    rig.engine.cmd.billing_reset(user="reader")
    reg = rig.engine.cmd.registers()
    bpr = reg["snapshots"]["bpr"]
    assert bpr["peaks"][0] == pytest.approx(3000.0, rel=REL)
    assert bpr["avg_pf"] == pytest.approx(3000.0 / math.hypot(3000.0, 1000.0), rel=REL)
    assert reg["peaks"]["p_del"]["value"] == 0.0
    assert reg["cumulative"]["p_del"] == pytest.approx(3000.0, rel=REL)
    assert reg["counters"]["bpr"] == 1
    assert rig.engine.cmd.self_read_log()[-1]["trigger"] == "bpr"
    rig.run(900, p=1000.0, q=0.0)
    assert rig.engine.cmd.registers()["avg_pf_since_bpr"] == pytest.approx(1.0, rel=1e-6)
    events = [r["event"] for r in rig.engine.cmd.load_profile() if r["kind"] == "event"]
    assert events == ["bpr"]


def test_test_mode_stops_billing_runs_test_registers_and_times_out(tmp_path):
    rig = Rig(tmp_path, config(test_mode_timeout="2 min"))
    rig.run(60)
    billing = rig.reg()
    rig.engine.cmd.test_mode_enter(user="tester")
    rig.run(60)
    assert rig.reg() == billing
    assert rig.engine.test_registers()["wh_del"] == pytest.approx(60 * 3000.0 / 3600, rel=REL)
    out = rig.engine.cmd.test_mode_exit(user="tester")
    assert out["final"]["wh_del"] == pytest.approx(50.0, rel=REL)
    assert rig.engine.test_registers() == {}
    rig.run(60)
    assert rig.reg() == pytest.approx(billing + 50.0, rel=REL)
    rig.engine.cmd.test_mode_enter(user="tester")
    rig.run(121)
    assert not rig.engine.cmd.registers()["test_mode"]                  # inactivity timeout
    assert rig.engine.cmd.audit_log(n=1)[0]["args"] == {"why": "inactivity"}
    rig.engine.cmd.test_mode_enter(user="tester")
    rig.engine.flush("power_fail")
    assert not rig.engine.cmd.registers()["test_mode"]                  # power loss ends test mode
    events = [r["event"] for r in rig.engine.cmd.load_profile() if r["kind"] == "event"]
    assert events == ["test_mode", "test_mode", "test_mode"]


def test_load_profile_intervals_outage_time_set_and_retrieval(tmp_path):
    rig = Rig(tmp_path)
    rig.run(1800)                                       # 07:00-07:30: two 15-min intervals closed at 07:30
    rows = rig.engine.cmd.load_profile()
    assert [(r["start"] - T0, r["end_ts"] - T0) for r in rows] == [(0.0, 900.0)]
    assert rows[0]["data"][0] == pytest.approx(750.0, rel=REL)
    rig.engine.flush("power_fail")
    rig.engine.close()
    rig.t += 3600                                        # one hour without power
    rig.engine = rig.open()
    rig.run(10)
    kinds = [(r["kind"], r["event"]) for r in rig.engine.cmd.load_profile()]
    assert kinds[-2:] == [("interval", ""), ("event", "outage")]
    assert rig.engine.cmd.load_profile()[-1]["info"]["down"] == pytest.approx(T0 + 1800, abs=1.0)
    rig.t -= 600                                         # clock set back 10 minutes
    rig.run(5)
    tail = rig.engine.cmd.load_profile()[-2:]
    assert tail[0]["event"] == "time_set"
    assert tail[1]["kind"] == "interval" and tail[1]["status"] & FLAGS["time_set"]   # closed short, realigned
    first = rig.engine.cmd.load_profile(mode="since_last_read")
    assert first and rig.engine.cmd.load_profile(mode="since_last_read") == []
    assert len(rig.engine.cmd.load_profile(mode="days", days=1)) == len(rig.engine.cmd.load_profile())


def test_load_profile_layout_change_clears_it_with_a_configuration_event(tmp_path):
    rig = Rig(tmp_path)
    rig.run(1000)
    rig.engine.close()
    rig.settings = from_config(meter_schema().load({"revenue": {"persist_interval": "1 h",
                                                                "load_profile": {"channels": ["wh_del"]}}}))
    rig.engine = rig.open()
    rig.run(2)
    rows = rig.engine.cmd.load_profile()
    assert [(r["kind"], r["event"]) for r in rows] == [("event", "config")]


def test_demand_deferral_after_power_up(tmp_path):
    rig = Rig(tmp_path, config(demand_deferral="20 min"))
    rig.run(2099)                                     # the first window after 20 min ends at 35 min
    assert rig.engine.cmd.registers()["peaks"]["p_del"]["value"] == 0.0
    rig.run(2)
    assert rig.engine.cmd.registers()["peaks"]["p_del"]["value"] == pytest.approx(3000.0, rel=REL)


def test_scheduled_billing_reset_runs_once_while_locked(tmp_path):
    rig = Rig(tmp_path, config(bpr_day=1, bpr_time="08:00"), locked=True)
    rig.run(2 * 3600)
    assert rig.engine.cmd.registers()["counters"]["bpr"] == 1
    assert rig.engine.cmd.audit_log()[-1]["args"] == {"source": "schedule"}


def test_published_values_cover_the_point_map(tmp_path):
    from firmware.points import points_by_name
    from firmware.revenue.publish import totals, values
    rig = Rig(tmp_path, tou_config())
    rig.run(1000)
    out = values(rig.engine)
    points = points_by_name()
    revenue_points = [p for p in points.values() if p.source == "revenue.toml"]
    assert revenue_points and all(p.name in out for p in revenue_points)
    assert all(name in points for name in out), sorted(set(out) - set(points))
    for name, value in out.items():
        assert np.size(value) == points[name].size, name
    assert out["p_demand_delivered_peak"] == pytest.approx(3000.0, rel=REL)
    assert out["tou_active_rate"] == 1.0                         # 07:16 local: rate A (B from 08:00)
    assert totals(rig.engine).wh_del[3] == pytest.approx(1000 * 3000.0 / 3600, rel=REL)


def test_demand_reset_when_locked_allows_only_the_billing_resets_as_the_jemstar_does(tmp_path):
    rig = Rig(tmp_path, config(demand_reset_when_locked=True), locked=True)
    rig.run(900)
    rig.engine.cmd.demand_reset(user="reader")
    rig.engine.cmd.billing_reset(user="reader")
    for name, args in (("energy_reset", {}), ("preset", {"register": "wh_del", "value": 5.0}),
                       ("test_mode_enter", {})):
        with pytest.raises(AccessDenied, match="revenue-locked"):
            rig.engine.commands()[name](user="reader", **args)
    assert [(a["action"], a["accepted"]) for a in rig.engine.cmd.audit_log()] == [
        ("demand_reset", 1), ("billing_reset", 1), ("energy_reset", 0), ("preset", 0), ("test_mode_enter", 0)]
    assert rig.engine.cmd.registers()["counters"]["bpr"] == 1
