"""Trending and forecasting (ION7400): interval statistics of 10-min values and the straight-line forecast, on
generated values whose statistics are known by construction; and `meter pq trend` on a recorder store."""
from __future__ import annotations

import datetime as dt
import json
import subprocess
import sys
import time

import pytest

from firmware.recorder.store import AggregateStore
from metrology.reports.trend import bounds, trend

NOW = dt.datetime(2026, 12, 7, 5, 30, tzinfo=dt.timezone.utc).timestamp()      # a Monday, 05:30 UTC


def _daily_ramp(days: int, base: float, per_day: float, wobble: float, today: float = NOW - 5.5 * 3600,
                extra: int = 33):
    """10-min values: day k (0 = the oldest) at base + per_day * k, each day +-wobble around it; ``days`` whole
    days before midnight ``today``, then ``extra`` values of today (33: up to 05:30)."""
    start = today - days * 86400
    out = []
    for k in range(days * 144 + extra):
        ts = start + (k + 1) * 600.0
        day = k // 144
        out.append((ts, base + per_day * day + (wobble if k % 2 else -wobble)))
    return out


def test_interval_bounds_are_clock_aligned():
    hours = bounds(NOW, "hourly")
    assert len(hours) == 24 and hours[-1] == (NOW - 1800.0, NOW + 1800.0)
    weeks = bounds(NOW, "weekly")
    assert len(weeks) == 8 and dt.datetime.fromtimestamp(weeks[-1][0], dt.timezone.utc).weekday() == 0
    months = bounds(NOW, "monthly")
    assert len(months) == 12 and dt.datetime.fromtimestamp(months[-1][0], dt.timezone.utc).day == 1
    assert dt.datetime.fromtimestamp(months[0][0], dt.timezone.utc).month == 1        # January to December
    assert all(a[1] == b[0] for a, b in zip(months, months[1:]))


def test_daily_statistics_and_a_linear_forecast():
    r = trend(_daily_ramp(10, 100.0, 2.0, 1.0), NOW, "daily")
    days = r["intervals"]
    assert len(days) == 31 and days[-1]["count"] == 33
    full = [d for d in days[:-1] if d["count"]]
    assert len(full) == 10 and all(d["count"] == 144 for d in full)
    for k, d in enumerate(full):                          # mean, min, max of each day, known by construction
        assert d["mean"] == pytest.approx(100.0 + 2.0 * k) and d["min"] == 99.0 + 2.0 * k
        assert d["max"] == 101.0 + 2.0 * k
    assert r["slope"] == pytest.approx(2.0)
    assert r["forecast"]["present"] == pytest.approx(120.0) and r["forecast"]["next"] == pytest.approx(122.0)
    assert r["next"]["start"] == days[-1]["end"] and r["next"]["end"] - r["next"]["start"] == 86400.0


def test_fewer_than_two_complete_intervals_give_no_forecast():
    r = trend(_daily_ramp(1, 100.0, 2.0, 1.0), NOW, "daily")
    assert r["forecast"] == {"present": None, "next": None} and r["slope"] is None
    assert trend([], NOW, "monthly")["forecast"]["next"] is None
    with pytest.raises(ValueError, match="hourly, daily, weekly, monthly"):
        trend([], NOW, "yearly")


def test_meter_pq_trend_on_the_recorders_store(tmp_path, repo, subprocess_env):
    store = AggregateStore(tmp_path / "var", {"3s": 100, "10min": 10000, "2h": 100})
    today = time.time() // 86400 * 86400              # the CLI trends up to now: the days before today
    for ts, v in _daily_ramp(3, 400.0, 1.0, 0.0, today, 0):
        store.append("10min", ts, False, False, {"v_ll": [v, v + 2.0, v + 4.0], "freq": 50.0, "i": [1, 2, 3],
                                                 "p": [1, 1, 1, 3]})
    store.close()
    cfg = tmp_path / "meter.toml"
    cfg.write_text(f'[meter]\ndata_dir = "{tmp_path / "var"}"\nrun_dir = "{tmp_path / "run"}"\n')
    run = subprocess.run([sys.executable, "-m", "firmware.cli", "pq", "--config", str(cfg), "trend", "v_ll_avg",
                          "--interval", "daily"], cwd=repo, env=subprocess_env, capture_output=True, text=True,
                         timeout=60)
    assert run.returncode == 0, run.stderr
    r = json.loads(run.stdout)
    assert r["target"] == "v_ll_avg" and r["unit"] == "V"
    full = [d for d in r["intervals"][:-1] if d["count"]]
    # the newest days: today is the present one; the average of the three line voltages is v + 2
    assert [d["mean"] for d in full][-3:] == pytest.approx([402.0, 403.0, 404.0])
    run = subprocess.run([sys.executable, "-m", "firmware.cli", "pq", "--config", str(cfg), "trend", "v_xx"],
                         cwd=repo, env=subprocess_env, capture_output=True, text=True, timeout=60)
    assert run.returncode != 0 and "invalid choice" in run.stderr
