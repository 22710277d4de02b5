"""``meter report`` end to end: a generated week of aggregates in a recorder database, the real command in its
own process, JSON on stdout and a PNG file checked by its header."""
from __future__ import annotations

import json
import struct
import subprocess

import pytest

from tests.support.pq_week import WEEK_START, Bad, week_records, write_db, write_events

BAD = (Bad(100, 101, "v", 200.0), Bad(400, 50, "flagged", 50.0), Bad(10, 5, "plt", 1.5),
       Bad(150, 101, "i5", 9.0))
INSIDE = WEEK_START + 3.5 * 86400           # Thursday noon of the generated week
PNG_MIN_BYTES, PNG_MAX_BYTES = 30_000, 3_000_000     # five panels of a week of lines at 100 dpi


def _meter(python: str, repo, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([python, "-m", "firmware.cli", "report", *args], cwd=repo, capture_output=True, text=True,
                          timeout=120)


def _png_size(path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR", "not a PNG file"
    assert PNG_MIN_BYTES < len(data) < PNG_MAX_BYTES, len(data)
    return struct.unpack(">II", data[16:24])


@pytest.fixture
def week_db(tmp_path):
    # the week before: healthy; the generated week: bad runs
    write_db(tmp_path, week_records(WEEK_START - 7 * 86400) + week_records(bad=BAD))
    # the generated week's dips, swells and interruptions; one dip the week before, one after
    day = 86400
    write_events(tmp_path, [(WEEK_START - 3600, "sag", 0.1, 60.0), (WEEK_START + 7 * day + 60, "sag", 0.1, 60.0),
                            (WEEK_START + day, "sag", 0.1, 85.0), (WEEK_START + day + 60, "sag", 0.1, 85.0),
                            (WEEK_START + 2 * day, "sag", 0.75, 45.0), (WEEK_START + 2 * day + 5, "sag", 2.0, 1.0),
                            (WEEK_START + 3 * day, "swell", 0.05, 115.0), (WEEK_START + 3 * day + 9, "swell", 0.3, 125.0),
                            (WEEK_START + 2 * day + 5, "interruption", 2.0, 1.0),
                            (WEEK_START + 4 * day, "interruption", 600.0, 0.0)])
    return tmp_path


def test_en50160_present_and_previous_week_with_png(python, repo, week_db, tmp_path):
    png = tmp_path / "en50160.png"
    common = ("--config", str(tmp_path / "absent.toml"), "--data-dir", str(week_db), "--at", str(INSIDE))
    res = _meter(python, repo, "en50160", *common, "--png", str(png))
    assert res.returncode == 0, res.stderr
    out = json.loads(res.stdout)
    assert out["period"] == {"start": WEEK_START, "end": WEEK_START + 7 * 86400}
    assert out["compliant"] is False
    assert out["records"]["10min_flagged"] == 50 and out["records"]["3s_used"] == 140 - 18
    volts = next(p for p in out["parameters"] if p["parameter"] == "supply voltage" and p["required_pct"] == 95.0)
    assert volts["measured_pct"] == pytest.approx(100 * (958 - 101) / 958, abs=1e-3) and not volts["compliant"]
    assert _png_size(png) == (1100, 1000)
    # EN 50160:2010 Tables 5 and 6, and the interruptions: short up to 3 min, long beyond
    dips, swells = out["events"]["dips"], out["events"]["swells"]
    assert dips["rows"][0] == "90 > u >= 80" and dips["columns"][0] == "10 <= t <= 200 ms"
    assert dips["total"] == 4 and dips["counts"][0][0] == 2 and dips["counts"][2][2] == 1 and dips["counts"][4][3] == 1
    assert swells["total"] == 2 and swells["counts"][1][0] == 1 and swells["counts"][0][1] == 1
    assert out["events"]["interruptions"] == {"short": 1, "long": 1, "short_up_to_s": 180.0, "longest_s": 600.0}

    res = _meter(python, repo, "en50160", *common, "--week", "previous")
    prev = json.loads(res.stdout)
    assert prev["period"]["end"] == WEEK_START and prev["compliant"] is True
    assert prev["events"]["dips"]["total"] == 1 and prev["events"]["dips"]["counts"][2][0] == 1


def test_ieee519_with_png_and_the_missing_ratio(python, repo, week_db, tmp_path):
    png = tmp_path / "ieee519.png"
    common = ("--config", str(tmp_path / "absent.toml"), "--data-dir", str(week_db), "--at", str(INSIDE))
    res = _meter(python, repo, "ieee519", *common, "--isc-il", "30", "--il", "100", "--png", str(png))
    assert res.returncode == 0, res.stderr
    out = json.loads(res.stdout)
    # 230 V wye: 398 V between lines, below 1 kV (Table 1: 5 %, 8 %); ISC/IL 30 (Table 2: 7 %, TDD 8 %)
    assert out["limits"] == {"voltage_individual_pct": 5.0, "voltage_thd_pct": 8.0, "current_tdd_pct": 8.0}
    assert out["records"] == {"10min_used": 958, "3s_days": 7}
    i5 = next(e for e in out["current"] if e.get("order") == 5)
    assert i5["p95_10min"] == pytest.approx(9.0) and i5["compliant"] is False and out["compliant"] is False
    assert _png_size(png) == (1100, 900)

    res = _meter(python, repo, "ieee519", *common)
    assert res.returncode == 1 and "--isc-il" in res.stderr and res.stdout == ""


def test_no_recorder_database_reports_no_data(python, repo, tmp_path):
    res = _meter(python, repo, "en50160", "--config", str(tmp_path / "absent.toml"), "--data-dir", str(tmp_path))
    assert res.returncode == 0, res.stderr
    out = json.loads(res.stdout)
    assert out["compliant"] is None and out["records"]["10min"] == 0
