"""Alarm evaluation (firmware.alarms) without processes: pickup/dropout timing, priorities, lists, ack, defaults."""
from __future__ import annotations

import math

import pytest

from firmware.alarms.manager import Actions, AlarmManager, InputAlarm
from firmware.alarms.setpoint import Setpoint
from firmware.config import meter_schema
from firmware.io import build

PERIOD_S = 1.0            # setpoints are evaluated once per measurement second


def _run(mgr: AlarmManager, series: list[float], point: str = "v_an", t0: float = 0.0) -> list[tuple[float, str]]:
    out = []
    for k, v in enumerate(series):
        t = t0 + k * PERIOD_S
        out += [(ev.t, ev.what) for ev in mgr.evaluate({point: v}, t)]
    return out


def test_over_setpoint_picks_up_after_the_delay_and_drops_out_after_its_own():
    sp = Setpoint("Over V", "v_an", "over", pickup=250.0, dropout=245.0, pickup_delay_s=3.0, dropout_delay_s=2.0,
                  priority=200)
    mgr = AlarmManager([(sp, Actions(output=2))])
    series = [230.0] * 5 + [252.0] * 10 + [248.0] * 3 + [240.0] * 6
    events = _run(mgr, series)
    # above from t = 5 s: pickup once 3 s have passed (t = 8 s); the value between dropout and pickup keeps it;
    # below the dropout from t = 18 s: dropout at t = 20 s. Within one evaluation period of the exact times.
    assert events == [(8.0, "pickup"), (20.0, "dropout")]
    hist = mgr.historic_list()
    assert hist[0]["duration_s"] == pytest.approx(12.0, abs=PERIOD_S) and hist[0]["value"] == 252.0


def test_a_short_excursion_shorter_than_the_pickup_delay_does_not_alarm_and_nan_holds_state():
    sp = Setpoint("Over V", "v_an", "over", pickup=250.0, dropout=245.0, pickup_delay_s=3.0)
    mgr = AlarmManager([(sp, Actions())])
    assert _run(mgr, [260.0, 260.0, 230.0, 260.0, 260.0, 230.0]) == []
    assert _run(mgr, [260.0] * 4 + [math.nan] * 5) == [(3.0, "pickup")]
    assert mgr.alarms[0].active                 # a missing value neither drops out nor re-arms


def test_percent_of_nominal_under_and_deviation_setpoints():
    intr = Setpoint("Intrp", "v_an", "under", pickup=10.0, dropout=12.0, percent=True, nominal=230.0)
    freq = Setpoint("Freq", "frequency", "deviation", pickup=1.0, dropout=0.8, percent=True, nominal=50.0)
    mgr = AlarmManager([(intr, Actions()), (freq, Actions())])
    assert [ev.what for ev in mgr.evaluate({"v_an": 22.0, "frequency": 49.45}, 0.0)] == ["pickup", "pickup"]
    # 27 V is 11.7 % of 230 V: between pickup and dropout, still active; 49.55 Hz is a 0.9 % deviation
    assert mgr.evaluate({"v_an": 27.0, "frequency": 49.55}, 1.0) == []
    assert [ev.alarm.name for ev in mgr.evaluate({"v_an": 28.0, "frequency": 49.7}, 2.0)] == ["Intrp", "Freq"]


def test_priorities_lists_acknowledgement_and_the_bell():
    hi = Setpoint("High", "p_total", "over", pickup=10.0, dropout=5.0, priority=220)
    info = Setpoint("Info", "p_total", "over", pickup=10.0, dropout=5.0, priority=20)
    mgr = AlarmManager([(hi, Actions(output=1)), (info, Actions())], [(InputAlarm("Door", 2, priority=100), Actions())])
    mgr.evaluate({"p_total": 20.0}, 0.0)
    mgr.input_changed(2, True, 0.5)
    s = mgr.summary()
    assert s == {"alarm_active": 1.0, "alarm_active_count": 2.0, "alarm_unacknowledged_count": 2.0,
                 "alarm_highest_priority": 220.0}
    assert [r["name"] for r in mgr.active_list()] == ["High", "Door"]    # Info is no alarm (ION: not displayed)
    assert mgr.output_levels() == {1: True}
    mgr.evaluate({"p_total": 0.0}, 10.0)
    # dropped out but unacknowledged: still in the active list, and in the historic list
    assert [r["name"] for r in mgr.active_list()] == ["High", "Door"] and mgr.output_levels() == {1: False}
    acked = mgr.acknowledge([1], "alice", 11.0)
    assert [e.alarm.name for e in acked] == ["High"]
    assert [r["name"] for r in mgr.active_list()] == ["Door"]
    hist = mgr.historic_list()
    assert {r["name"] for r in hist} == {"High", "Info"} and hist[-1]["acknowledged_by"] in ("alice", None)
    assert mgr.acknowledge(None, "bob", 12.0)[0].alarm.name == "Door"
    assert mgr.summary()["alarm_highest_priority"] == 100.0          # Door is still active, now acknowledged
    mgr.input_changed(2, False, 13.0)
    assert mgr.summary()["alarm_active"] == 0.0 and mgr.active_list() == []


def test_ion_default_alarms_from_the_configuration():
    cfg = meter_schema().defaults()
    mgr = build.alarms(cfg, build.input_settings(cfg, 4))
    names = [(a.name, a.priority) for a in mgr.alarms]
    assert names[:7] == [("Over THD V1", 160), ("Over THD V2", 160), ("Over THD V3", 160), ("Freq Setpoint", 160),
                         ("4-30 Volt Intrp Ph1", 96), ("4-30 Volt Intrp Ph2", 96), ("4-30 Volt Intrp Ph3", 96)]
    assert [n for n, p in names[7:11]] == [f"Digital In {n}" for n in range(1, 5)]   # ION: Info Only, enabled
    # the unary alarms: the meter's power-up and the disturbances at their [pq] event priorities
    assert names[11:] == [("Power Up", 128), ("Sag", 255), ("Swell", 255), ("Interruption", 64)]
    healthy = {"thd_v_an": 2.0, "thd_v_bn": 2.0, "thd_v_cn": 2.0, "frequency": 50.01, "v_an": 230.0, "v_bn": 230.0,
               "v_cn": 230.0}
    assert mgr.evaluate(healthy, 0.0) == []
    events = mgr.evaluate({**healthy, "v_bn": 5.0, "frequency": 50.6}, 1.0)
    assert sorted(e.alarm.name for e in events) == ["4-30 Volt Intrp Ph2", "Freq Setpoint"]
    assert mgr.summary()["alarm_highest_priority"] == 160.0


def test_alarm_points_and_the_acknowledge_command_on_modbus():
    """The alarm summary and list at 27177.. and 27200.. as Modbus reads them, and a write of 1 to 27190
    running io.ack (the handler of the comms service, on the real register map)."""
    import asyncio
    import struct

    from firmware.comms.modbus.feed import FunctionFeed
    from firmware.comms.modbus.handler import Access, Handler
    from firmware.comms.modbus.ident import Identity
    from firmware.comms.modbus.regmap import build_map

    ident = Identity("OpenMeter", "OM-1", "0.1.0", "https://example.invalid", "OpenMeter", "OM-CM4", "x", "SIM-1")
    ids = [4.0, 12.0] + [0.0] * 14
    values = {"alarm_active": 1.0, "alarm_active_count": 1.0, "alarm_unacknowledged_count": 2.0,
              "alarm_highest_priority": 200.0, "alarm_list_id": ids, "revenue_locked": 1.0}
    ran = []

    async def run(cmd, args):
        ran.append(cmd.control)

    handler = Handler(build_map(), FunctionFeed(lambda: values, ident.register_values()).poll, ident,
                      Access.READ_WRITE, run)
    reply = asyncio.run(handler.handle(struct.pack(">BHH", 3, 27177, 3)))
    assert struct.unpack(">3H", reply[2:]) == (1, 2, 200)
    reply = asyncio.run(handler.handle(struct.pack(">BHH", 3, 27200, 3)))
    assert struct.unpack(">3H", reply[2:]) == (4, 12, 0)
    reply = asyncio.run(handler.handle(struct.pack(">BHH", 3, 4005, 1)))
    assert struct.unpack(">H", reply[2:]) == (1,)                       # alarm_active, mapped before
    # acknowledging changes no revenue data: allowed while revenue-locked
    assert asyncio.run(handler.handle(struct.pack(">BHH", 6, 27190, 1))) == struct.pack(">BHH", 6, 27190, 1)
    assert ran == ["io.ack"]


def test_a_unary_alarm_lasts_until_acknowledged_and_holds_its_output():
    from firmware.alarms.manager import Actions, AlarmManager, UnaryAlarm

    m = AlarmManager(unary=[(UnaryAlarm("Sag", "pq_sag", 255), Actions(output=3)),
                            (UnaryAlarm("Off", "pq_swell", 0), Actions())])
    (ev,) = m.happened("pq_sag", 100.0, 41.5)
    assert ev.what == "pickup" and ev.value == 41.5 and m.output_levels() == {3: True}
    assert m.happened("pq_sag", 101.0, 38.0) == []             # the same episode until seen: its latest value
    assert m.active_list()[0]["value"] == 38.0
    assert m.happened("pq_swell", 101.0) == [] and m.happened("unknown", 101.0) == []   # priority 0, none
    events = m.acknowledge(None, "op", 105.0)
    assert [e.what for e in events] == ["ack", "dropout"] and m.output_levels() == {3: False}
    assert m.active_list() == []
    (row,) = m.historic_list()
    assert row["name"] == "Sag" and row["duration_s"] == 5.0 and row["acknowledged_by"] == "op"
    assert [e.what for e in m.happened("pq_sag", 200.0, 50.0)] == ["pickup"]      # a new one after it was seen
