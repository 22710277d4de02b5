"""Load-profile capacity: a year of 16 channels at 15 min (SPEC §5: at least 365 days), kept and retrieved
all / since the last read / for the last N days (JEM L2484-2488)."""
from __future__ import annotations

import time
from datetime import datetime, timezone

import pytest

from firmware.config.sections.revenue import DEFAULT_LP_CHANNELS
from firmware.revenue.loadprofile import LoadProfile, record
from firmware.revenue.settings import parse_lp_channel
from metrology.tou import TimeZone

INTERVAL_S = 900
YEAR_RECORDS = 365 * 24 * 4                     # 35,040
START = datetime(2023, 1, 1, 6, 0, tzinfo=timezone.utc).timestamp()
END = START + YEAR_RECORDS * INTERVAL_S         # 2024-01-01 06:00 UTC
CHANNELS = tuple(parse_lp_channel(name) for name in DEFAULT_LP_CHANNELS)
MAX_BYTES_PER_RECORD = 1024                     # a year of 16 channels in well under 40 MB of eMMC


def interval(i: int) -> tuple[float, dict]:
    """Interval record i of the year: channel k holds i + k / 16 (exact in binary), status i % 7."""
    start = START + i * INTERVAL_S
    data = [i + k / 16 for k in range(len(CHANNELS))]
    return start + INTERVAL_S, record("interval", "", start, start + INTERVAL_S, data, i % 7)


@pytest.fixture(scope="module")
def year(tmp_path_factory):
    """A load profile holding exactly a year of intervals (its depth)."""
    path = tmp_path_factory.mktemp("lp") / "revenue.db"
    lp = LoadProfile(path, CHANNELS, INTERVAL_S, YEAR_RECORDS)
    t0 = time.perf_counter()
    lp.store.append_many(interval(i) for i in range(YEAR_RECORDS))
    print(f"\nload profile: {YEAR_RECORDS} records of {len(CHANNELS)} channels written in "
          f"{time.perf_counter() - t0:.2f} s, {path.stat().st_size / 1e6:.1f} MB")
    yield lp, path
    lp.close()


def test_a_year_of_16_channels_at_15_min_is_kept_whole(year):
    lp, path = year
    assert len(CHANNELS) == 16
    rows = lp.read_all()
    assert len(rows) == YEAR_RECORDS
    assert rows[0]["start"] == START and rows[-1]["end_ts"] == END
    assert all(b["start"] == a["end_ts"] for a, b in zip(rows, rows[1:]))      # no interval missing
    for i in (0, 1, 17_519, YEAR_RECORDS - 1):
        assert rows[i]["data"] == interval(i)[1]["data"] and rows[i]["status"] == i % 7
    assert path.stat().st_size < MAX_BYTES_PER_RECORD * YEAR_RECORDS


def test_last_n_days_are_complete_local_days_plus_today(year):
    lp, _ = year
    now = END + 1.0                                      # 2024-01-01 06:00:01, 24 intervals into the day
    today = lp.read_days(0, now, TimeZone())
    assert len(today) == 24 and today[0]["start"] == END - 6 * 3600
    sixty = lp.read_days(60, now, TimeZone())
    assert len(sixty) == 60 * 96 + 24                   # 2023-11-02 00:00 onwards
    assert sixty[0]["start"] == datetime(2023, 11, 2, tzinfo=timezone.utc).timestamp()
    assert len(lp.read_days(1000, now, TimeZone())) == len(sixty)        # N is at most 60 (JEM L2486)
    # at +05:00 the local day began at 19:00 UTC the day before: 11 hours of today
    assert len(lp.read_days(0, now, TimeZone(offset_min=300))) == 44


def test_since_last_read_then_the_year_rolls_over_oldest_first(year):
    lp, _ = year
    assert len(lp.read_since_last()) == YEAR_RECORDS
    assert lp.read_since_last() == []
    lp.store.append_many(interval(YEAR_RECORDS + i) for i in range(4))      # one more hour
    new = lp.read_since_last()
    assert [r["start"] for r in new] == [END + i * INTERVAL_S for i in range(4)]
    rows = lp.read_all()
    assert len(rows) == YEAR_RECORDS and rows[0]["start"] == START + 4 * INTERVAL_S     # oldest hour dropped
