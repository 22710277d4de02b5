"""EN 50160 and IEEE 519 reports on a generated week of aggregates whose statistics are known by construction
(tests/support/pq_week.py): exact percentages from record counts, limits from the standards' tables."""
from __future__ import annotations

import datetime

import numpy as np
import pytest

from metrology.reports import en50160, ieee519
from metrology.reports.common import WEEK_S, week_bounds
from tests.support.pq_week import WEEK_START, Bad, week_records

END = WEEK_START + WEEK_S
N10 = 1008
BAD = (Bad(100, 101, "v", 200.0), Bad(400, 50, "flagged", 50.0), Bad(500, 60, "h5", 7.0), Bad(10, 5, "plt", 1.5),
       Bad(0, 10, "freq", 49.4), Bad(700, 40, "u2", 2.5), Bad(150, 101, "i5", 9.0))
USED = N10 - 50          # the flagged run is left out


def _by(report: dict, name: str, required: float | None = None) -> dict:
    return next(p for p in report["parameters"] if p["parameter"] == name
                and (required is None or p["required_pct"] == required))


def test_week_bounds_are_monday_to_monday_utc():
    wed = datetime.datetime(2026, 12, 2, 12, 0, tzinfo=datetime.timezone.utc).timestamp()
    start, end = week_bounds(wed)
    assert datetime.datetime.fromtimestamp(start, datetime.timezone.utc) == datetime.datetime(
        2026, 11, 30, tzinfo=datetime.timezone.utc)
    assert end - start == WEEK_S
    assert week_bounds(wed, "previous") == (start - WEEK_S, start)
    assert week_bounds(start)[0] == start           # Monday 00:00 opens its own week
    with pytest.raises(ValueError, match="present, previous"):
        week_bounds(wed, "next")


def test_en50160_healthy_week_complies():
    r = en50160.report(week_records(), WEEK_START, END, 230.0, 50.0)
    assert r["compliant"] is True
    assert r["records"]["10min"] == N10 and r["records"]["coverage_pct"] == 100.0
    assert all(p["measured_pct"] == 100.0 for p in r["parameters"])
    assert r["records"]["3s_used"] == 7 * 20 and r["records"]["2h_used"] == 84


def test_en50160_bad_runs_fail_where_the_percentages_say():
    r = en50160.report(week_records(bad=BAD), WEEK_START, END, 230.0, 50.0)
    assert r["compliant"] is False
    assert r["records"]["10min_flagged"] == 50 and r["records"]["10min_used"] == USED
    v = _by(r, "supply voltage", 95.0)
    assert v["measured_pct"] == pytest.approx(100 * (USED - 101) / USED, abs=1e-3) and v["compliant"] is False
    assert v["per_phase"] == [v["measured_pct"]] * 3
    assert _by(r, "supply voltage", 100.0)["compliant"] is True       # 200 V is inside 195.5..253 V
    h5 = next(p for p in r["parameters"] if p.get("order") == 5)
    assert h5["measured_pct"] == pytest.approx(100 * (USED - 60) / USED, abs=1e-3) and h5["compliant"] is False
    assert _by(r, "THD")["compliant"] is True                        # sqrt(7² + 2²) = 7.28 % <= 8 %
    plt = _by(r, "flicker Plt")
    assert plt["measured_pct"] == pytest.approx(100 * 79 / 84, abs=1e-3) and plt["compliant"] is False
    # frequency from the 3-s records: 20 a day, 18 of them in the flagged run (left out), 10 at 49.4 Hz
    assert r["records"]["3s_used"] == 140 - 18
    f = _by(r, "frequency", 99.5)
    assert f["measured_pct"] == pytest.approx(100 * 112 / 122, abs=1e-3) and f["compliant"] is False
    assert _by(r, "frequency", 100.0)["compliant"] is True           # 49.4 Hz is inside 47..52 Hz
    u2 = _by(r, "voltage unbalance")
    assert u2["measured_pct"] == pytest.approx(100 * (USED - 40) / USED, abs=1e-3) and u2["compliant"] is True
    assert r["summary"]["v_min"] == 200.0       # the flagged 50 V never shows


def test_en50160_judges_frequency_on_the_ten_second_values():
    """EN 50160 4.2.1 (IEC 61000-4-30 5.1): mean over 10 s. The 10-min records carry their 60 10-s values; a
    flagged one (NaN) is left out, and those of a record flagged by a dip elsewhere in it still count."""
    records = week_records(bad=(Bad(400, 1, "flagged", 50.0),))
    n = 0
    for k, r in enumerate(x for x in records if x["kind"] == "10min"):
        f10 = np.full(60, 50.0)
        if k < 3:
            f10[:10] = 49.4            # 30 10-s values outside 49.5..50.5 Hz, inside 47..52 Hz
        if k == 5:
            f10[7] = np.nan            # a flagged 10-s value
        if k == 400:
            f10[0] = 46.0              # in the record flagged by a dip: its 10-s value is outside even 47..52 Hz
        r["values"]["freq_10s"] = f10.tolist()
        n += int(np.isfinite(f10).sum())
    r = en50160.report(records, WEEK_START, END, 230.0, 50.0)
    assert r["records"]["frequency_values"] == "10s" and r["records"]["10s_used"] == n == N10 * 60 - 1
    f = _by(r, "frequency", 99.5)
    assert "10s values" in f["limit"] and f["values"] == n
    assert f["measured_pct"] == pytest.approx(round(100 * (n - 31) / n, 3)) and f["compliant"] is True
    assert _by(r, "frequency", 100.0)["measured_pct"] == pytest.approx(round(100 * (n - 1) / n, 3))


def test_en50160_header_agrees_with_the_rows():
    """A week of one stored 10-min record that lost samples: the header says it is stored and not used, and the
    voltage rows have no data because of it, not despite a usable record."""
    (rec,) = [r for r in week_records() if r["kind"] == "10min"][:1]
    rec["gap"] = True
    r = en50160.report([rec], WEEK_START, END, 230.0, 50.0)
    assert r["records"]["10min"] == 1 and r["records"]["10min_gap"] == 1 and r["records"]["10min_used"] == 0
    v = _by(r, "supply voltage", 95.0)
    assert v["values"] == r["records"]["10min_used"] == 0 and v["measured_pct"] is None
    assert r["records"]["coverage_pct"] == 0.0


def test_en50160_without_records_says_unknown_not_compliant():
    r = en50160.report([], WEEK_START, END, 230.0, 50.0)
    assert r["compliant"] is None and r["records"]["coverage_pct"] == 0.0
    assert all(p["measured_pct"] is None and p["compliant"] is None for p in r["parameters"])


def test_ieee519_limit_tables():
    assert ieee519.voltage_limits(0.4) == (5.0, 8.0)
    assert ieee519.voltage_limits(13.8) == (3.0, 5.0)
    assert ieee519.voltage_limits(115.0) == (1.5, 2.5)
    assert ieee519.voltage_limits(230.0) == (1.0, 1.5)
    per_order, tdd = ieee519.current_limits(0.4, 30.0)
    assert (per_order[5], per_order[4], per_order[11], per_order[35], per_order[50], tdd) == (
        7.0, 1.75, 3.5, 0.5, 0.125, 8.0)
    assert ieee519.current_limits(0.4, 10.0)[1] == 5.0
    assert ieee519.current_limits(0.4, 5000.0)[1] == 20.0
    assert ieee519.current_limits(138.0, 30.0)[1] == 4.0
    assert ieee519.current_limits(345.0, 60.0)[1] == 3.75
    with pytest.raises(ValueError, match="ISC/IL"):
        ieee519.current_limits(0.4, 0.0)


def test_ieee519_healthy_and_bad_weeks():
    ok = ieee519.report(iter(week_records()), WEEK_START, END, 0.4, 30.0, 100.0)
    assert ok["compliant"] is True and ok["records"] == {"10min_used": N10, "3s_days": 7}
    thd = ok["voltage"][0]
    assert thd["p95_10min"] == pytest.approx(np.hypot(3.0, 2.0), abs=1e-4)
    tdd = ok["current"][0]
    assert tdd["p95_10min"] == pytest.approx(np.hypot(4.0, 2.0), abs=1e-4) and tdd["limit_pct"] == 8.0

    bad = ieee519.report(week_records(bad=BAD), WEEK_START, END, 0.4, 30.0, 100.0)
    assert bad["compliant"] is False
    v5 = next(e for e in bad["voltage"] if e.get("order") == 5)
    # 60 of 958 10-min values at 7 %: more than 5 %, so the 95th percentile is 7 % > 5 %
    assert v5["p95_10min"] == pytest.approx(7.0) and v5["compliant"] is False
    i5 = next(e for e in bad["current"] if e.get("order") == 5)
    assert i5["p95_10min"] == pytest.approx(9.0) and i5["p99_10min"] == pytest.approx(9.0)
    assert i5["p99_10min_limit_pct"] == 10.5 and i5["p99_3s_worst_day"] == pytest.approx(9.0)
    assert i5["compliant"] is False             # only the weekly 95th percentile fails (9 % > 7 %)
    assert bad["current"][0]["compliant"] is False      # TDD sqrt(9² + 2²) = 9.2 % > 8 %
    i7 = next(e for e in bad["current"] if e.get("order") == 7)
    assert i7["compliant"] is True and i7["p95_10min"] == pytest.approx(2.0)


def test_en50160_reports_the_weeks_under_and_over_deviation_without_a_verdict():
    """The week's value is the IEC 61000-4-30 Annex D formula carried through the 10-min values (their clipped
    mean squares averaged, not their percentages): one 10-min value at 10 % under and eleven at none give
    1 - sqrt((0.9² + 11) / 12) = 0.803 %; the flagged record is left out. Exact arithmetic: tolerance 1e-4 %
    (the report rounds to 4 decimals)."""
    recs = [{"kind": "10min", "ts": WEEK_START + 600.0 * (k + 1), "flagged": k == 12, "gap": False,
             "values": {"under_dev": [10.0 if k in (0, 12) else 0.0, 0.0, None],
                        "over_dev": [0.0, 2.0, None]}} for k in range(13)]
    r = en50160.report(recs, WEEK_START, END, 230.0, 50.0)
    dev = r["deviation"]
    assert dev["under_dev"]["week_pct"][0] == pytest.approx(100 * (1 - np.sqrt((0.81 + 11) / 12)), abs=1e-4)
    assert dev["under_dev"]["max_10min_pct"][:2] == [10.0, 0.0]
    assert dev["over_dev"]["week_pct"][:2] == pytest.approx([0.0, 2.0], abs=1e-4)
    assert dev["under_dev"]["week_pct"][2] is None and dev["over_dev"]["max_10min_pct"][2] is None
    assert not any("deviation" in p["parameter"] for p in r["parameters"])
