"""The statistics a PQ event carries (SPEC §4: min/max/avg of V, I, THD, PF and f during the event), from a
generated dip of known depth with known current, THD, power factor and frequency during it, through the
metrology pipeline."""
from __future__ import annotations

import math

import numpy as np
import pytest

from metrology.events import PqEvent
from metrology.evstats import SOURCES, EventStats, cycle_quantities
from metrology.pipeline import Pipeline
from metrology.settings import MetrologySettings
from tests.conformance.signals import FS, INPUTS, balanced

T0_NS = 1_700_000_000_000_000_000
BLOCK = 4096
UDIN_V = 230.0
F0_HZ = 49.8                      # off nominal, so a frequency statistic that fell back to nominal would show
DIP_FRACTION = 0.5                # residual voltage 50 % of Udin on every phase
I_BEFORE_A, I_DURING_A = 5.0, 8.0
PHI_DEG = 30.0
H5_FRACTION = 0.04                # a 5th harmonic of 4 % on the voltages, scaled with the dip: THD 4 % throughout
DIP_START_CYCLE, DIP_CYCLES = 50, 25     # the dip starts and ends on cycle boundaries of the fundamental
# IEC 61000-4-30 Class A: Urms(1/2) (and so Irms(1/2), the same computation) within 0.2 % of Udin; the frequency,
# THD and PF of a steady one-cycle window after the 512-sample resampling, measured at < 1e-3 of the value:
# tolerances with a margin above what the test measures
V_TOL_V = 0.002 * UDIN_V
I_TOL_A = 0.002 * I_DURING_A
F_TOL_HZ = 0.01                   # Class A frequency uncertainty (5.1.4)
THD_TOL_PCT = 0.02                # absolute, % points
PF_TOL = 1e-3
EDGE_REL = 0.01                   # values whose window holds a step: 1 % (measured up to 0.8 %)


class SteppedDip:
    """``balanced`` with the voltages scaled to DIP_FRACTION and the currents set to I_DURING_A between two cycle
    boundaries: every half cycle is wholly before, in or after the dip, so each Urms(1/2) is known exactly."""

    def __init__(self) -> None:
        self.before = balanced(UDIN_V, I_BEFORE_A, PHI_DEG, F0_HZ, v_harm=[(5, H5_FRACTION, 0.0)])
        self.during = balanced(UDIN_V * DIP_FRACTION, I_DURING_A, PHI_DEG, F0_HZ, v_harm=[(5, H5_FRACTION, 0.0)])
        self.t1_s = DIP_START_CYCLE / F0_HZ
        self.t2_s = (DIP_START_CYCLE + DIP_CYCLES) / F0_HZ

    def samples(self, first: int, count: int) -> np.ndarray:
        t = np.arange(first, first + count) / FS
        inside = ((t >= self.t1_s) & (t < self.t2_s))[:, None]
        return np.where(inside, self.during.samples(first, count), self.before.samples(first, count))


def run_dip() -> PqEvent:
    sig = SteppedDip()
    pl = Pipeline(MetrologySettings(nominal_frequency=50.0, nominal_voltage=UDIN_V))
    events = []
    for first in range(0, int(2.5 * FS), BLOCK):
        events += pl.feed_values(sig.samples(first, BLOCK), first, T0_NS + round(first * 1e9 / FS)).events
    (dip,) = [e for e in events if isinstance(e, PqEvent) and e.kind == "sag"]
    return dip


def test_dip_statistics_of_voltage_current_thd_pf_and_frequency():
    dip = run_dip()
    s = dip.stats
    assert {k: s[k]["source"] for k in SOURCES} == SOURCES
    assert SOURCES == {"v": "half-cycle", "i": "half-cycle", "thd_v": "cycle", "pf": "cycle", "f": "cycle"}
    # the values of the event: the first Urms(1/2) whose window holds one half cycle before the dip and one in
    # it, the 2 * DIP_CYCLES - 1 wholly in it, then the one across the end (still below 92 %); the next is at 100 %
    v_in, i_in = UDIN_V * DIP_FRACTION * math.hypot(1, H5_FRACTION), I_DURING_A
    v_edge = math.sqrt((UDIN_V ** 2 * (1 + H5_FRACTION ** 2) + v_in ** 2) / 2)
    i_edge = math.sqrt((I_BEFORE_A ** 2 + I_DURING_A ** 2) / 2)
    n_in = 2 * DIP_CYCLES - 1
    v_avg = (2 * v_edge + n_in * v_in) / (n_in + 2)
    i_avg = (2 * i_edge + n_in * i_in) / (n_in + 2)
    assert dip.extreme_pct == pytest.approx(v_in / UDIN_V * 100, abs=0.2)
    # values wholly in the dip: Class A tolerance
    assert s["v"]["min"] == pytest.approx([v_in] * 3, abs=V_TOL_V)
    assert s["v"]["avg"] == pytest.approx([v_avg] * 3, abs=V_TOL_V)
    assert s["i"]["avg"] == pytest.approx([i_avg] * 3, abs=I_TOL_A)
    # the two values across the steps: the step lies within the cycle tracker's boundary uncertainty of a
    # half-cycle boundary, so the window holds a little more or less of either side
    assert s["v"]["max"] == pytest.approx([v_edge] * 3, rel=EDGE_REL)
    assert s["i"]["min"] == pytest.approx([i_edge] * 3, rel=EDGE_REL)
    assert s["i"]["max"] == pytest.approx([i_in] * 3, rel=EDGE_REL)     # the current overshoots a little there
    # THD, PF and f of the cycles wholly in the dip; the (at most two) cycles holding a step are distorted by it
    # (a step is broadband, and it moves the detected zero crossing): they may only pull the max (THD, f) or the
    # min (PF) away, and the average by at most their 4 values of the 2 * DIP_CYCLES + 1
    thd_pct = H5_FRACTION * 100
    pf = math.cos(math.radians(PHI_DEG)) / math.hypot(1, H5_FRACTION)   # P = V1 I1 cos φ, S = Vrms Irms
    n_values = 2 * DIP_CYCLES + 1
    for name, steady, tol, lo in (("thd_v", thd_pct, THD_TOL_PCT, False), ("f", F0_HZ, F_TOL_HZ, False),
                                  ("pf", pf, PF_TOL, True)):
        st = {k: np.atleast_1d(np.asarray(s[name][k], dtype=float)) for k in ("min", "max", "avg")}
        good, pulled = (st["max"], st["min"]) if lo else (st["min"], st["max"])
        assert good == pytest.approx(steady, abs=tol), name
        assert np.all((pulled - steady) * (-1 if lo else 1) >= -tol), name
        assert np.all(np.abs(st["avg"] - steady) <= np.abs(pulled - steady) * 4 / n_values + tol), name
    assert s["pf"]["min"] > 0.8 and max(s["thd_v"]["max"]) < 10.0 and s["f"]["max"] < F0_HZ + 1.0


def test_statistics_are_plain_json_in_the_event_record():
    d = run_dip().as_dict()
    assert set(d["stats"]) == set(SOURCES)
    assert all(isinstance(x, float) for x in d["stats"]["v"]["avg"])
    assert isinstance(d["stats"]["pf"]["max"], float)


def test_nan_values_are_left_out_and_none_when_there_is_none():
    # 1 watched channel: row = v, i (3), thd (1), pf, f
    st = EventStats(np.array([100.0]), np.array([1.0, 2.0, np.nan, 5.0, 0.9, np.nan]))
    st.add(np.array([50.0]), np.array([3.0, 2.0, np.nan, 7.0, 0.7, np.nan]))
    r = st.result()
    assert r["v"] == {"min": [50.0], "max": [100.0], "avg": [75.0], "source": "half-cycle"}
    assert r["i"]["avg"] == [2.0, 2.0, None]
    assert r["thd_v"]["max"] == [7.0] and r["pf"]["avg"] == pytest.approx(0.8) and r["f"]["min"] is None


def test_cycle_quantities_without_fundamental_or_current_are_nan():
    ms = np.zeros((1, 11))
    fund = np.zeros((1, 11), dtype=complex)
    q = cycle_quantities(ms, fund, np.zeros((1, 3)), np.array([50.0]), np.array([0, 1, 2]))
    assert np.isnan(q[0, :4]).all() and q[0, 4] == 50.0
    assert INPUTS[1] == "VA"


def test_statistics_through_the_pq_ring_record_and_the_recorder_store(tmp_path):
    """metrology -> PQ ring record -> pq_events (the recorder service's LogStore) -> read_events and the recorder's
    ``events`` command rows: the statistics arrive unchanged (JSON floats round-trip exactly)."""
    from firmware.ipc.pqrecords import decode, encode
    from firmware.recorder.store import EVENTS_COLUMNS, EVENTS_TABLE, RECORDER_DB, read_events
    from firmware.storage.logstore import LogStore

    dip = run_dip()
    kind, meta, _ = decode(encode("event", dip.as_dict()))
    assert kind == "event" and meta["stats"] == dip.stats
    store = LogStore(tmp_path / RECORDER_DB, EVENTS_TABLE, EVENTS_COLUMNS, 100)
    store.append_many([(dip.start_ns / 1e9, {"kind": "sag", "start_ns": dip.start_ns, "duration_s": dip.duration_s,
                                             "detail": meta})])
    assert store.read(limit=None)[0]["detail"]["stats"] == dip.stats
    store.close()
    (row,) = read_events(tmp_path, 0.0, 2e9)
    assert row["detail"]["stats"] == dip.stats
    assert row["detail"]["stats"]["v"]["min"] == pytest.approx([UDIN_V * DIP_FRACTION] * 3, abs=2 * V_TOL_V)


def test_only_dips_swells_and_interruptions_carry_statistics():
    import dataclasses

    from hal.sim.signals import RapidVoltageChange, steady

    sig = dataclasses.replace(steady(UDIN_V, 5.0, 20.0), events=(RapidVoltageChange(0.06, 1.5, 0.1),))
    pl = Pipeline(MetrologySettings(nominal_frequency=50.0, nominal_voltage=UDIN_V))
    events = []
    for first in range(0, int(4.0 * FS), BLOCK):
        events += pl.feed_values(sig.sample_range(first, BLOCK, FS), first, T0_NS + round(first * 1e9 / FS)).events
    (rvc,) = [e for e in events if isinstance(e, PqEvent) and e.kind == "rvc"]
    assert rvc.stats == {} and run_dip().stats
